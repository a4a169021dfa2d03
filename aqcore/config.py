"""``aq.toml``: the runtime's configuration file. Paths in it are relative to the file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UsageError

CONFIG_ENV = "AQ_CONFIG"


class RuntimeConfig(BaseModel):
    """The ``[runtime]`` table."""

    model_config = ConfigDict(extra="forbid")

    adapter: str = "test"
    model: str = "default"
    policy: str
    store: str = "memory:"
    lineage: str | None = None
    key: str | None = None
    keyring: str | None = None
    leaves: str | None = None
    journal: str | None = None
    tenant: str = "default"
    state_timeout_s: float | None = None
    adapter_options: dict[str, Any] = Field(default_factory=dict)
    base: str = Field(default=".", exclude=True)

    def _path(self, value: str | None) -> str | None:
        if value is None:
            return None
        return str((Path(self.base) / value).resolve()) if not os.path.isabs(value) else value

    def _url(self, value: str | None) -> str | None:
        # lmdb:///abs and file:///abs stay; a relative file path is resolved against the config
        if value is None or ":" in value:
            return value
        return self._path(value)

    def runtime_kwargs(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "model": self.model,
            "policy": self._path(self.policy),
            "store": self._url(self.store),
            "lineage": self._url(self.lineage),
            "key": self._path(self.key),
            "keyring": self._path(self.keyring),
            "leaves": self._path(self.leaves),
            "journal": self._path(self.journal),
            "tenant": self.tenant,
            "state_timeout_s": self.state_timeout_s,
            "adapter_options": self.adapter_options,
        }


def load_config(path: str | Path | None = None) -> RuntimeConfig:
    """Read ``path``, else ``$AQ_CONFIG``, else ``./aq.toml``."""
    path = Path(path or os.environ.get(CONFIG_ENV) or "aq.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path} is not valid TOML: {exc}") from None
    table = raw.get("runtime")
    if not isinstance(table, dict):
        raise UsageError(f"config {path} needs a [runtime] table")
    unknown = set(raw) - {"runtime"}
    if unknown:
        raise UsageError(f"config {path}: unknown table(s) {sorted(unknown)}")
    try:
        return RuntimeConfig.model_validate({**table, "base": str(path.parent)})
    except ValidationError as err:
        first = err.errors()[0]
        key = "runtime." + ".".join(str(p) for p in first["loc"])
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise UsageError(f"config {path}: {msg} (key {key!r})") from None
