"""Keys: private files created 0600, keyring windows and rotation, no key material in output."""

from __future__ import annotations

import logging
import os
import pickle
import stat
from pathlib import Path

import pytest
from conftest import T0, make_receipt
from cryptography.hazmat.primitives import serialization

from aqcore.errors import LineageError, UsageError
from aqcore.lineage import Keyring, generate_key, load_signer, revoke_key, rotate_key, verify_records
from aqcore.lineage.keys import US_PER_DAY, load_private_key


def _private_pem(key_dir: Path, key_id: str) -> bytes:
    return (key_dir / f"{key_id}.pem").read_bytes()


def test_generate_writes_0600_private_key_and_public_keyring(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask the key is never group/world readable
    try:
        info = generate_key(tmp_path / "k", valid_days=10, at_us=T0)
    finally:
        os.umask(old)
    pem = tmp_path / "k" / f"{info.key_id}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    ring = Keyring.load(tmp_path / "k" / "keyring.json")
    (entry,) = list(ring)
    assert entry == info and entry.status == "active"
    assert entry.not_after_us - entry.not_before_us == 10 * US_PER_DAY
    assert b"PRIVATE" not in (tmp_path / "k" / "keyring.json").read_bytes()


def test_generate_refuses_a_directory_with_an_active_key(key_dir: Path) -> None:
    with pytest.raises(UsageError, match="rotate"):
        generate_key(key_dir, at_us=T0)


def test_private_key_file_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = generate_key(tmp_path, at_us=T0)
    from aqcore.lineage import keys

    with pytest.raises(FileExistsError):
        keys._write_private(tmp_path / f"{info.key_id}.pem", b"other")


def test_rotation_retires_old_key_and_both_verify_their_receipts(key_dir: Path) -> None:
    old = load_signer(key_dir, at_us=T0 + 1)
    before = make_receipt(old, seq=1)
    new_info = rotate_key(key_dir, at_us=T0 + 10_000_000)
    ring = Keyring.load(key_dir / "keyring.json")
    retired = ring.get(old.key_id)
    assert retired is not None and retired.status == "retired" and retired.not_after_us == T0 + 10_000_000
    new = load_signer(key_dir, at_us=T0 + 20_000_000)
    assert new.key_id == new_info.key_id != old.key_id
    after = make_receipt(new, seq=2, prev=before.digest, end_us=T0 + 20_000_000)
    report = verify_records([before.envelope, after.envelope], ring)
    assert report.ok, report.summary()
    # the retired key can no longer sign (its window closed at rotation)
    retired_signer = load_signer(key_dir, key_id=old.key_id)
    with pytest.raises(LineageError, match="cannot sign"):
        make_receipt(retired_signer, seq=2, prev=before.digest, end_us=T0 + 20_000_000)


def test_revoked_key_fails_every_receipt(key_dir: Path, signer) -> None:  # type: ignore[no-untyped-def]
    r = make_receipt(signer)
    revoke_key(key_dir, signer.key_id)
    report = verify_records([r.envelope], Keyring.load(key_dir / "keyring.json"))
    assert report.first is not None and report.first.code == "key_revoked" and report.first.index == 0


def test_no_private_key_material_in_repr_logs_or_errors(key_dir: Path, signer, caplog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pem = _private_pem(key_dir, signer.key_id)
    raw = signer._private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = b"".join(pem.splitlines()[1:-1]).decode()
    secrets = [body, body[:16], body[-16:], raw.hex(), raw.hex()[:16]]
    texts = [repr(signer), str(signer), f"{signer}", repr(signer.info)]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("signer %s %r", signer, signer)
    texts.append(caplog.text)
    with pytest.raises(TypeError) as exc_info:
        pickle.dumps(signer)
    texts.append(str(exc_info.value))
    # a damaged private key file: the error names the file, never its contents
    damaged = tmp_path / "damaged.pem"
    damaged.write_bytes(pem[:-30] + b"garbage\n")
    damaged.chmod(0o600)
    with pytest.raises(LineageError) as err:
        load_private_key(damaged)
    texts.append(str(err.value))
    texts.append(repr(err.value.__cause__) + repr(err.value.__context__))
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_group_readable_private_key_is_refused(key_dir: Path, signer) -> None:  # type: ignore[no-untyped-def]
    pem = key_dir / f"{signer.key_id}.pem"
    pem.chmod(0o640)
    with pytest.raises(LineageError, match="chmod 600"):
        load_signer(key_dir, at_us=T0 + 1)


def test_keyring_entry_must_match_its_public_key(key_dir: Path) -> None:
    path = key_dir / "keyring.json"
    data = path.read_text()
    ring = Keyring.load(path)
    kid = next(iter(ring)).key_id
    path.write_text(data.replace(kid, "0" * 64))
    with pytest.raises(LineageError, match="key_id does not match"):
        Keyring.load(path)
    path.write_text(data.replace('"active"', '"sleeping"'))
    with pytest.raises(LineageError, match="status"):
        Keyring.load(path)
    with pytest.raises(LineageError, match="cannot read keyring"):
        Keyring.load(key_dir / "missing.json")


def test_load_signer_from_a_pem_file_and_missing_active_key(key_dir: Path, signer) -> None:  # type: ignore[no-untyped-def]
    from_file = load_signer(key_dir / f"{signer.key_id}.pem")
    assert from_file.key_id == signer.key_id
    with pytest.raises(LineageError, match="no active key valid at"):
        load_signer(key_dir, at_us=T0 + 400 * US_PER_DAY)  # after the window
