"""The plugin manager: entry-point discovery, the disable switch, per-plugin error isolation,
and the registries filled by the registration hooks."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, UsageError
from .log import get_logger

log = get_logger("aq.plugins")

ENTRY_POINT_GROUP = "aq"
DISABLE_ENV = "AQ_DISABLE_PLUGINS"

# Built-ins register through the same hooks as third-party plugins; the key is the name
# AQ_DISABLE_PLUGINS knows them by.
BUILTIN_PLUGINS = {
    "builtin-metrics": "aqcore.gates.builtin",
    "memory-state": "aqcore.state.memory",
    "file-lineage": "aqcore.lineage.plugin",
    "test-lm": "aqcore.testing.plugin",
}


@dataclass
class PluginInfo:
    """One plugin as ``aq plugins`` shows it."""

    name: str
    distribution: str
    version: str
    provides: list[str] = field(default_factory=list)
    status: str = "loaded"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "provides": list(self.provides),
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class Provider:
    """A registered factory (adapter, state backend or lineage store)."""

    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    granularity: str | None = None


def disabled_plugins(value: str | None = None) -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "") if value is None else value
    return {name.strip() for name in raw.split(",") if name.strip()}


def _core_version() -> str:
    try:
        return importlib.metadata.version("aqcore")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class AqPluginManager:
    """aq's typed wrapper around a :class:`pluggy.PluginManager`."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager("aq")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.adapters: dict[str, Provider] = {}
        self.state_backends: dict[str, Provider] = {}
        self.lineage_stores: dict[str, Provider] = {}
        self.metrics: dict[str, type] = {}
        self._collected = False

    # -- registration -------------------------------------------------------------------
    def register(self, plugin: ModuleType | object, name: str, *, distribution: str, version: str) -> None:
        """Register one plugin object; its registration hooks run when the registries are read."""
        if name in self.plugins and self.plugins[name].status == "loaded":
            raise PluginError("a plugin with this name is already registered", plugin=name, distribution=distribution)
        try:
            self.pm.register(plugin, name=name)
            # a misspelt hook (aq_register_adapter) would otherwise be accepted and never called
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(str(exc), plugin=name, distribution=distribution) from None
        self.plugins[name] = PluginInfo(name=name, distribution=distribution, version=version)
        self._collected = False

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._collected = False

    def load_builtins(self, disabled: set[str]) -> None:
        for name, module_name in BUILTIN_PLUGINS.items():
            if name in disabled:
                self.plugins[name] = PluginInfo(name, "aqcore", _core_version(), status="disabled")
                continue
            module = importlib.import_module(module_name)
            self.register(module, name, distribution="aqcore", version=_core_version())

    def load_entrypoints(self, disabled: set[str], *, strict: bool = False) -> None:
        """Load every entry point of group ``aq``; a plugin that fails is reported, not fatal."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "0"
            if ep.name in disabled or dist in disabled:
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version, status="disabled")
                continue
            try:
                plugin = ep.load()
            except ModuleNotFoundError as exc:
                log.warning(
                    "plugin skipped: a dependency is missing",
                    plugin=ep.name, distribution=dist, missing=exc.name,
                )
                self.plugins[ep.name] = PluginInfo(
                    ep.name, dist, version, status="skipped", error=f"missing module {exc.name!r}"
                )
                continue
            except Exception as exc:  # a broken plugin must not take the others down
                error = PluginError(f"failed to load: {type(exc).__name__}: {exc}", plugin=ep.name, distribution=dist)
                if strict:
                    raise error from exc
                log.error("plugin failed to load", plugin=ep.name, distribution=dist, error=str(exc))
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version, status="failed", error=str(error))
                continue
            try:
                self.register(plugin, ep.name, distribution=dist, version=version)
            except PluginError as exc:
                if strict:
                    raise
                log.error("plugin refused", plugin=ep.name, distribution=dist, error=str(exc))
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version, status="failed", error=str(exc))

    # -- registries ---------------------------------------------------------------------
    def _call_register_hook(self, hook_name: str, make_register: Callable[[str], Callable[..., None]]) -> None:
        hook = getattr(self.pm.hook, hook_name)

        def builtin_first(impl: Any) -> bool:
            # a clash with a built-in name is the newcomer's fault
            info = self.plugins.get(impl.plugin_name)
            return info is None or info.distribution != "aqcore"

        for impl in sorted(reversed(hook.get_hookimpls()), key=builtin_first):
            info = self.plugins.get(impl.plugin_name)
            if info is not None and info.status == "failed":
                continue
            try:
                impl.function(make_register(impl.plugin_name))
            except Exception as exc:
                error = exc if isinstance(exc, PluginError) else PluginError(
                    f"{type(exc).__name__}: {exc}",
                    plugin=impl.plugin_name,
                    distribution=info.distribution if info else None,
                    hook=hook_name,
                )
                if self.strict or info is None or info.distribution == "aqcore":
                    raise error from exc
                # one broken plugin must not take the CLI down: drop it, say so
                log.error("plugin failed in a registration hook", plugin=impl.plugin_name, error=str(error))
                info.status, info.error = "failed", str(error)
                self._collected = False
                raise _Retry from None

    def _provider_register(
        self, registry: dict[str, Provider], kind: str, hook: str
    ) -> Callable[[str], Callable[..., None]]:
        def make(plugin: str) -> Callable[..., None]:
            def register(
                name: str, factory: Callable[..., Any], *, description: str = "", granularity: str | None = None
            ) -> None:
                if not isinstance(name, str) or not name:
                    raise PluginError(f"{kind} name must be a non-empty string, got {name!r}", plugin=plugin, hook=hook)
                if not callable(factory):
                    raise PluginError(f"{kind} {name!r}: factory is not callable", plugin=plugin, hook=hook)
                if name in registry:
                    raise PluginError(
                        f"{kind} {name!r} is already registered by plugin {registry[name].plugin!r}",
                        plugin=plugin, hook=hook,
                    )
                registry[name] = Provider(name, factory, plugin, description, granularity)
                self.plugins[plugin].provides.append(f"{kind}:{name}") if plugin in self.plugins else None

            return register

        return make

    def _metric_register(self, plugin: str) -> Callable[[type], None]:
        from .gate import GateMetric

        def register(metric_class: type) -> None:
            hook = "aq_register_gate_metrics"
            if not (isinstance(metric_class, type) and issubclass(metric_class, GateMetric)):
                raise PluginError(f"{metric_class!r} is not a GateMetric subclass", plugin=plugin, hook=hook)
            name = metric_class.name
            if not name:
                raise PluginError(f"{metric_class.__name__} has no name", plugin=plugin, hook=hook)
            if name in self.metrics:
                other = getattr(self.metrics[name], "_aq_plugin", "?")
                raise PluginError(
                    f"gate metric {name!r} is already registered by plugin {other!r}", plugin=plugin, hook=hook
                )
            metric_class._aq_plugin = plugin  # type: ignore[attr-defined]
            self.metrics[name] = metric_class
            if plugin in self.plugins:
                self.plugins[plugin].provides.append(f"metric:{name}")

        return register

    def collect(self) -> None:
        """Run the registration hooks (once) and fill the registries. A plugin whose
        registration fails is marked failed and the registries are rebuilt without it."""
        while not self._collected:
            try:
                self._collect_once()
            except _Retry:
                continue

    def _collect_once(self) -> None:
        self.adapters.clear()
        self.state_backends.clear()
        self.lineage_stores.clear()
        self.metrics.clear()
        for info in self.plugins.values():
            info.provides.clear()
        self._call_register_hook(
            "aq_register_adapters", self._provider_register(self.adapters, "adapter", "aq_register_adapters")
        )
        self._call_register_hook(
            "aq_register_state_backends",
            self._provider_register(self.state_backends, "state", "aq_register_state_backends"),
        )
        self._call_register_hook(
            "aq_register_lineage_stores",
            self._provider_register(self.lineage_stores, "lineage", "aq_register_lineage_stores"),
        )
        self._call_register_hook("aq_register_gate_metrics", self._metric_register)
        self._collected = True

    def metric_classes(self) -> dict[str, type]:
        self.collect()
        return dict(self.metrics)

    # -- factories ----------------------------------------------------------------------
    def _lookup(self, registry: dict[str, Provider], kind: str, key: str) -> Provider:
        self.collect()
        provider = registry.get(key)
        if provider is None:
            known = ", ".join(sorted(registry)) or "none"
            raise UsageError(f"no {kind} named {key!r} is registered (available: {known}); is its plugin installed?")
        return provider

    def make_adapter(self, name: str, model: str, **options: Any) -> Any:
        provider = self._lookup(self.adapters, "adapter", name)
        return provider.factory(model, **options)

    def open_state_backend(self, url: str) -> Any:
        return self._lookup(self.state_backends, "state backend for scheme", _scheme(url)).factory(url)

    def open_lineage_store(self, url: str) -> Any:
        return self._lookup(self.lineage_stores, "lineage store for scheme", _scheme(url)).factory(url)

    # -- lifecycle hooks ----------------------------------------------------------------
    @property
    def hook(self) -> Any:
        return self.pm.hook

    def has_impls(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def describe(self) -> list[PluginInfo]:
        self.collect()
        return sorted(self.plugins.values(), key=lambda info: info.name)


class _Retry(Exception):
    """Internal: a plugin was dropped during collection; collect again without it."""


def _scheme(url: str) -> str:
    if ":" not in url:
        raise UsageError(f"store URL {url!r} has no scheme (expected e.g. memory:, lmdb:///path, redis://host:6379/0)")
    return url.split(":", 1)[0].lower()


def get_plugin_manager(
    *,
    entrypoints: bool = True,
    builtins: bool = True,
    disable: Iterable[str] | None = None,
    strict: bool = False,
) -> AqPluginManager:
    """Build a plugin manager: built-in plugins, then entry points of group ``aq``, minus the
    names in ``AQ_DISABLE_PLUGINS`` (comma-separated plugin or distribution names)."""
    disabled = disabled_plugins() | set(disable or ())
    manager = AqPluginManager(strict=strict)
    if builtins:
        manager.load_builtins(disabled)
    if entrypoints:
        manager.load_entrypoints(disabled, strict=strict)
    return manager
