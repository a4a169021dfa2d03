"""Ed25519 signing keys and the keyring of public keys that verifies receipts.

A key directory holds ``keyring.json`` (public keys, safe to publish) and one private key per
key id, ``<key_id>.pem`` (PKCS#8 PEM, mode 0600, created that way so it is never readable by
others even for a moment). A key id is the sha256 hex of the raw 32-byte public key. Each key
has a validity window ``[not_before_us, not_after_us)`` and a status: ``active`` (signs new
receipts), ``retired`` (rotated out; still verifies receipts signed inside its window) or
``revoked`` (every receipt it signed fails verification).

Private key material never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import LineageError, UsageError
from .canonical import canonical_bytes
from .dsse import Envelope, sign_envelope

KeyStatus = Literal["active", "retired", "revoked"]
STATUSES: frozenset[str] = frozenset({"active", "retired", "revoked"})
KEYRING_FILE = "keyring.json"
DEFAULT_KEY_DIR = ".aq/keys"
US_PER_DAY = 86_400 * 1_000_000


def default_key_dir() -> Path:
    """``$AQ_KEY_DIR`` or ``.aq/keys``."""
    return Path(os.environ.get("AQ_KEY_DIR", DEFAULT_KEY_DIR))


def now_us() -> int:
    """The current time in integer microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """The key id: sha256 hex of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """One public key of a keyring."""

    key_id: str
    public_key: bytes
    not_before_us: int
    not_after_us: int
    status: KeyStatus = "active"

    def valid_at(self, t_us: int) -> bool:
        """True if ``t_us`` is inside the validity window (status is not considered)."""
        return self.not_before_us <= t_us < self.not_after_us

    def verifier(self) -> Ed25519PublicKey:
        """The public key as a ``cryptography`` object."""
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": "ed25519",
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "not_before_us": self.not_before_us,
            "not_after_us": self.not_after_us,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> KeyInfo:
        """Parse one keyring entry, checking every field; ``where`` names it in errors."""
        if not isinstance(obj, dict):
            raise LineageError(f"{where}: a key entry must be an object")
        if obj.get("algorithm") != "ed25519":
            raise LineageError(f"{where}: algorithm must be 'ed25519' (got {obj.get('algorithm')!r})")
        for name in ("not_before_us", "not_after_us"):
            if type(obj.get(name)) is not int:
                raise LineageError(f"{where}: {name} must be an integer (µs since the epoch)")
        if obj.get("status") not in STATUSES:
            raise LineageError(
                f"{where}: status must be one of {sorted(STATUSES)} (got {obj.get('status')!r})"
            )
        try:
            raw = base64.b64decode(str(obj.get("public_key", "")), validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise LineageError(f"{where}: public_key must be base64 of a raw 32-byte Ed25519 key") from None
        key_id = key_id_for(public)
        if obj.get("key_id") != key_id:
            raise LineageError(f"{where}: key_id does not match sha256 of the public key ({key_id})")
        return cls(key_id, raw, obj["not_before_us"], obj["not_after_us"], obj["status"])


class Keyring:
    """Public keys by key id. Load with :meth:`load`, write with :meth:`save`."""

    def __init__(self, keys: list[KeyInfo] | None = None) -> None:
        self._keys: dict[str, KeyInfo] = {}
        for key in keys or []:
            self.add(key)

    def add(self, key: KeyInfo) -> None:
        """Add or replace a key."""
        self._keys[key.key_id] = key

    def get(self, key_id: str) -> KeyInfo | None:
        """The key with ``key_id``, or None."""
        return self._keys.get(key_id)

    def __iter__(self) -> Iterator[KeyInfo]:
        return iter(sorted(self._keys.values(), key=lambda k: (k.not_before_us, k.key_id)))

    def __len__(self) -> int:
        return len(self._keys)

    def active(self, at_us: int | None = None) -> KeyInfo | None:
        """The active key valid at ``at_us`` (now by default) with the latest start, or None."""
        t = now_us() if at_us is None else at_us
        candidates = [k for k in self if k.status == "active" and k.valid_at(t)]
        return candidates[-1] if candidates else None

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "keys": [k.to_dict() for k in self]}

    def to_bytes(self) -> bytes:
        """Canonical JSON of the keyring (what :meth:`save` writes, plus a newline)."""
        return canonical_bytes(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Any, where: str = "keyring") -> Keyring:
        if not isinstance(obj, dict) or obj.get("version") != 1 or not isinstance(obj.get("keys"), list):
            raise LineageError(f"{where}: expected an object with version 1 and a list of keys")
        return cls([KeyInfo.from_dict(k, f"{where} keys[{i}]") for i, k in enumerate(obj["keys"])])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read a keyring file.

        :raises LineageError: if the file cannot be read or is malformed (names the file).
        """
        try:
            obj = json.loads(Path(path).read_bytes())
        except OSError as exc:
            raise LineageError(f"cannot read keyring {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise LineageError(f"keyring {path} is not valid JSON: {exc}") from None
        return cls.from_dict(obj, f"keyring {path}")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the keyring atomically (temporary file, fsync, rename), mode 0644."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self.to_bytes() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


class Signer:
    """An Ed25519 private key with its keyring entry. Its repr shows the key id only."""

    __slots__ = ("_private", "info")

    def __init__(self, private_key: Ed25519PrivateKey, info: KeyInfo) -> None:
        if key_id_for(private_key.public_key()) != info.key_id:
            raise LineageError(f"private key does not match keyring entry {info.key_id}")
        self._private = private_key
        self.info = info

    @property
    def key_id(self) -> str:
        return self.info.key_id

    def sign(self, payload: bytes, payload_type: str) -> Envelope:
        """Sign ``payload`` into a DSSE envelope."""
        return sign_envelope(payload, self._private, self.key_id, payload_type)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, status={self.info.status!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would copy key material into wherever the pickle goes (caches, queues, logs).
        raise TypeError("a Signer cannot be pickled; load it from its key directory in each process")


def _write_private(path: Path, pem: bytes) -> None:
    """Create ``path`` with mode 0600 from the first byte on; never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only narrow 0600; make the mode exact anyway
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_key(key_dir: Path, not_before_us: int, valid_days: int) -> KeyInfo:
    if valid_days <= 0:
        raise UsageError(f"valid days must be positive (got {valid_days})")
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    info = KeyInfo(
        key_id=key_id_for(private.public_key()),
        public_key=private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        not_before_us=not_before_us,
        not_after_us=not_before_us + valid_days * US_PER_DAY,
        status="active",
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_dir / f"{info.key_id}.pem", pem)
    return info


def _load_keyring_or_empty(key_dir: Path) -> Keyring:
    path = key_dir / KEYRING_FILE
    return Keyring.load(path) if path.exists() else Keyring()


def generate_key(
    key_dir: str | os.PathLike[str], *, valid_days: int = 365, at_us: int | None = None
) -> KeyInfo:
    """Create the first active key of ``key_dir`` (private PEM + keyring entry).

    :raises UsageError: if the directory already has an active key (use :func:`rotate_key`).
    """
    key_dir = Path(key_dir)
    t = now_us() if at_us is None else at_us
    keyring = _load_keyring_or_empty(key_dir)
    existing = [k.key_id for k in keyring if k.status == "active"]
    if existing:
        raise UsageError(f"{key_dir} already has active key {existing[0]}; use 'aq keys rotate'")
    info = _new_key(key_dir, t, valid_days)
    keyring.add(info)
    keyring.save(key_dir / KEYRING_FILE)
    return info


def rotate_key(
    key_dir: str | os.PathLike[str], *, valid_days: int = 365, at_us: int | None = None
) -> KeyInfo:
    """Make a new active key; every active key becomes ``retired`` with its window closed at
    the rotation time, so receipts it signed before then still verify."""
    key_dir = Path(key_dir)
    t = now_us() if at_us is None else at_us
    keyring = _load_keyring_or_empty(key_dir)
    info = _new_key(key_dir, t, valid_days)
    for old in list(keyring):
        if old.status == "active":
            keyring.add(replace(old, status="retired", not_after_us=min(old.not_after_us, t)))
    keyring.add(info)
    keyring.save(key_dir / KEYRING_FILE)
    return info


def revoke_key(key_dir: str | os.PathLike[str], key_id: str) -> KeyInfo:
    """Mark ``key_id`` revoked: every receipt it signed fails verification from now on."""
    key_dir = Path(key_dir)
    keyring = Keyring.load(key_dir / KEYRING_FILE)
    old = keyring.get(key_id)
    if old is None:
        raise UsageError(f"no key {key_id} in {key_dir / KEYRING_FILE}")
    new = replace(old, status="revoked")
    keyring.add(new)
    keyring.save(key_dir / KEYRING_FILE)
    return new


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load an Ed25519 PKCS#8 PEM private key, refusing files readable by group or others.

    :raises LineageError: naming the file, never its contents.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise LineageError(f"cannot read private key {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LineageError(
            f"private key {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The library's message may quote parts of the input; say only what and where.
        raise LineageError(f"private key {path} is not an unencrypted PKCS#8 PEM key") from None
    finally:
        del data
    if not isinstance(key, Ed25519PrivateKey):
        raise LineageError(f"private key {path} is not an Ed25519 key")
    return key


def load_signer(
    key: str | os.PathLike[str] | None = None,
    *,
    keyring: str | os.PathLike[str] | None = None,
    key_id: str | None = None,
    at_us: int | None = None,
) -> Signer:
    """The signer of a key directory (its active key valid now, or ``key_id``) or of one private
    key file (matched to its keyring entry by key id).

    :param key: a key directory or a ``.pem`` file; default :func:`default_key_dir`.
    :param keyring: the keyring file; default ``keyring.json`` in the key's directory.
    :raises LineageError: if there is no such key, or its private file is missing or unsafe.
    """
    path = Path(key) if key is not None else default_key_dir()
    key_dir = path if path.is_dir() else path.parent
    ring_path = Path(keyring) if keyring is not None else key_dir / KEYRING_FILE
    ring = Keyring.load(ring_path)
    if not path.is_dir():
        private = load_private_key(path)
        found = ring.get(key_id_for(private.public_key()))
        if found is None:
            raise LineageError(f"private key {path} has no entry in keyring {ring_path}")
        return Signer(private, found)
    info = ring.get(key_id) if key_id else ring.active(at_us)
    if info is None:
        when = "now" if at_us is None else f"at {at_us} µs"
        wanted = f"key {key_id}" if key_id else f"active key valid {when}"
        raise LineageError(f"keyring {ring_path} has no {wanted}")
    return Signer(load_private_key(key_dir / f"{info.key_id}.pem"), info)
