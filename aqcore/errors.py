"""Typed errors. Every message names what was wrong and where (plugin, hook, file, key)."""

from __future__ import annotations


class AqError(Exception):
    """Base class of every error aq raises on purpose."""


class UsageError(AqError):
    """Bad input from the caller (CLI flags, keyword arguments, URLs). CLI exit code 2."""


class PolicyError(AqError):
    """A policy file that cannot be loaded: names the file and the dotted key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        where = ", ".join(p for p in (f"file {path}" if path else "", f"key {key!r}" if key else "") if p)
        super().__init__(f"{message} ({where})" if where else message)
        self.path = path
        self.key = key


class PluginError(AqError):
    """A plugin misbehaved: names the plugin, its distribution and the hook."""

    def __init__(self, message: str, *, plugin: str, distribution: str | None = None, hook: str | None = None) -> None:
        dist = f" from distribution {distribution!r}" if distribution else ""
        in_hook = f" in hook {hook!r}" if hook else ""
        super().__init__(f"plugin {plugin!r}{dist}{in_hook}: {message}")
        self.plugin = plugin
        self.distribution = distribution
        self.hook = hook


class AdapterError(AqError):
    """An adapter could not load its model or failed during decoding."""


class StateUnavailable(AqError):
    """The state backend did not answer (down, timeout). Triggers the degraded profile."""


class StateConflict(AqError):
    """Compare-and-set kept failing beyond the retry limit."""


class GateError(AqError):
    """A gate metric broke its contract (e.g. asked to roll back released text)."""


class LineageError(AqError):
    """A lineage record could not be written or does not verify."""
