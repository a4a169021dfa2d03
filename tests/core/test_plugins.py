"""Plugin discovery and isolation: entry points (faked distributions), the disable switch,
broken and dependency-less plugins, and registration errors that name the culprit."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest

from aqcore import plugins as plugins_module
from aqcore.errors import PluginError, UsageError
from aqcore.gate import GateMetric
from aqcore.hookspecs import hookimpl
from aqcore.plugins import get_plugin_manager


@dataclass
class FakeDist:
    name: str
    version: str = "1.2.3"


@dataclass
class FakeEntryPoint:
    name: str
    module: str
    dist: FakeDist

    def load(self) -> Any:
        return __import__(self.module, fromlist=["_"])


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


class GoodMetric(GateMetric):
    name = "good_metric"


@hookimpl
def _register_good(register):
    register(GoodMetric)


@hookimpl
def _register_adapter(register):
    register("fake", lambda model, **o: ("fake-adapter", model, o), granularity="token")


@pytest.fixture
def fake_entry_points(monkeypatch):
    points: list[FakeEntryPoint] = []

    def entry_points(group: str):
        assert group == "aq"
        return list(points)

    monkeypatch.setattr(plugins_module.importlib.metadata, "entry_points", entry_points)
    yield points
    for ep in points:
        sys.modules.pop(ep.module, None)


def test_discovers_plugins_from_entry_points(fake_entry_points):
    _module("aq_fake_good", aq_register_gate_metrics=_register_good, aq_register_adapters=_register_adapter)
    fake_entry_points.append(FakeEntryPoint("good", "aq_fake_good", FakeDist("aq-fake-good")))
    manager = get_plugin_manager()
    info = {i.name: i for i in manager.describe()}["good"]
    assert info.distribution == "aq-fake-good"
    assert info.version == "1.2.3"
    assert sorted(info.provides) == ["adapter:fake", "metric:good_metric"]
    assert manager.metric_classes()["good_metric"] is GoodMetric
    assert manager.make_adapter("fake", "m", x=1) == ("fake-adapter", "m", {"x": 1})


def test_builtins_register_through_the_same_hooks(pm):
    provides = {p for info in pm.describe() for p in info.provides}
    assert {"adapter:test", "adapter:test-units", "state:memory"} <= provides


def test_disable_switch_skips_named_plugins(fake_entry_points, monkeypatch):
    _module("aq_fake_good", aq_register_gate_metrics=_register_good)
    fake_entry_points.append(FakeEntryPoint("good", "aq_fake_good", FakeDist("aq-fake-good")))
    monkeypatch.setenv("AQ_DISABLE_PLUGINS", "good, test-lm")
    manager = get_plugin_manager()
    status = {i.name: i.status for i in manager.describe()}
    assert status["good"] == "disabled"
    assert status["test-lm"] == "disabled"
    assert "good_metric" not in manager.metric_classes()
    with pytest.raises(UsageError, match="no adapter named 'test'"):
        manager.make_adapter("test", "default")


def test_disable_by_distribution_name(fake_entry_points, monkeypatch):
    _module("aq_fake_good", aq_register_gate_metrics=_register_good)
    fake_entry_points.append(FakeEntryPoint("good", "aq_fake_good", FakeDist("aq-fake-good")))
    monkeypatch.setenv("AQ_DISABLE_PLUGINS", "aq-fake-good")
    assert "good_metric" not in get_plugin_manager().metric_classes()


def test_broken_plugin_is_named_and_does_not_take_the_others_down(fake_entry_points):
    fake_entry_points.append(FakeEntryPoint("broken", "aq_fake_broken", FakeDist("aq-fake-broken")))
    _module("aq_fake_good", aq_register_gate_metrics=_register_good)
    fake_entry_points.append(FakeEntryPoint("good", "aq_fake_good", FakeDist("aq-fake-good")))

    def explode():
        raise RuntimeError("bad config at import")

    # an import that raises
    class Exploding(FakeEntryPoint):
        def load(self):
            explode()

    fake_entry_points[0] = Exploding("broken", "aq_fake_broken", FakeDist("aq-fake-broken"))
    manager = get_plugin_manager()
    info = {i.name: i for i in manager.describe()}
    assert info["broken"].status == "failed"
    assert "plugin 'broken' from distribution 'aq-fake-broken'" in (info["broken"].error or "")
    assert "bad config at import" in (info["broken"].error or "")
    assert "good_metric" in manager.metric_classes()
    with pytest.raises(PluginError, match="plugin 'broken' from distribution 'aq-fake-broken'"):
        get_plugin_manager(strict=True)


def test_missing_optional_dependency_skips_with_a_warning(fake_entry_points):
    from structlog.testing import capture_logs

    class NeedsTorch(FakeEntryPoint):
        def load(self):
            raise ModuleNotFoundError("No module named 'torch_not_here'", name="torch_not_here")

    fake_entry_points.append(NeedsTorch("heavy", "aq_fake_heavy", FakeDist("aq-fake-heavy")))
    with capture_logs() as logs:
        manager = get_plugin_manager()
    info = {i.name: i for i in manager.describe()}["heavy"]
    assert info.status == "skipped"
    assert "torch_not_here" in (info.error or "")
    warning = next(entry for entry in logs if entry["log_level"] == "warning")
    assert warning["plugin"] == "heavy" and warning["missing"] == "torch_not_here"


def test_register_hook_errors_name_plugin_distribution_and_hook(fake_entry_points):
    @hookimpl
    def aq_register_gate_metrics(register):
        register(object)

    _module("aq_fake_bad", aq_register_gate_metrics=aq_register_gate_metrics)
    fake_entry_points.append(FakeEntryPoint("bad", "aq_fake_bad", FakeDist("aq-fake-bad")))
    manager = get_plugin_manager()
    manager.metric_classes()  # the bad plugin is dropped, the others keep working
    info = {i.name: i for i in manager.describe()}["bad"]
    assert info.status == "failed"
    message = info.error or ""
    assert "plugin 'bad'" in message and "aq_register_gate_metrics" in message
    assert "not a GateMetric subclass" in message
    assert manager.make_adapter("test", "default").name == "test"
    with pytest.raises(PluginError, match="not a GateMetric subclass"):
        get_plugin_manager(strict=True).metric_classes()


def test_register_hook_exception_names_the_plugin(pm):
    class Raising:
        @hookimpl
        def aq_register_adapters(self, register):
            raise KeyError("oops")

    pm.register(Raising(), "inline-raising", distribution="aq-raising", version="0")
    pm.collect()
    info = {i.name: i for i in pm.describe()}["inline-raising"]
    assert info.status == "failed"
    assert "plugin 'inline-raising' from distribution 'aq-raising' in hook 'aq_register_adapters'" in (info.error or "")
    assert "adapter:test" in {p for i in pm.describe() for p in i.provides}


def test_duplicate_names_are_refused_naming_both_plugins(pm):
    class Dup:
        @hookimpl
        def aq_register_adapters(self, register):
            register("test", lambda model: None)

    pm.register(Dup(), "inline-dup", distribution="aq-dup", version="0")
    pm.collect()
    info = {i.name: i for i in pm.describe()}["inline-dup"]
    assert info.status == "failed"
    assert "adapter 'test' is already registered by plugin 'test-lm'" in (info.error or "")


def test_hookimpl_with_a_wrong_signature_is_refused_by_name(pm):
    class Wrong:
        @hookimpl
        def aq_emit(self, emission, scope, extra):
            pass

    with pytest.raises(PluginError, match="plugin 'inline-wrong'"):
        pm.register(Wrong(), "inline-wrong", distribution="aq-wrong", version="0")


def test_unknown_store_scheme_is_a_usage_error(pm):
    with pytest.raises(UsageError, match="no state backend for scheme named 'nosuch'"):
        pm.open_state_backend("nosuch://x")
    with pytest.raises(UsageError, match="has no scheme"):
        pm.open_state_backend("just-a-path")


def test_get_plugin_manager_has_no_import_side_effects():
    import subprocess

    code = (
        "import sys, aqcore, aqcore.plugins;"
        "heavy = [m for m in ('numpy', 'llama_cpp', 'torch', 'redis', 'lmdb') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_real_entry_points_are_read_from_installed_distributions():
    """Whatever is installed here, every discovered aq entry point appears in aq plugins."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="aq")}
    described = {info.name for info in get_plugin_manager().describe()}
    assert names <= described


@pytest.mark.skipif(not __import__("os").environ.get("AQ_TEST_INSTALLED"), reason="only under tox")
def test_aqcore_under_test_is_the_installed_wheel():
    import aqcore

    assert "site-packages" in (aqcore.__file__ or ""), aqcore.__file__


def test_a_misspelt_hook_is_refused_by_name(pm):
    class Misspelt:
        @hookimpl
        def aq_register_adapter(self, register):  # no such hook: the "s" is missing
            pass

    with pytest.raises(PluginError, match=r"plugin 'inline-misspelt'.*aq_register_adapter"):
        pm.register(Misspelt(), "inline-misspelt", distribution="aq-misspelt", version="0")
    assert "inline-misspelt" not in pm.plugins


def test_an_entry_point_with_a_wrong_hook_signature_does_not_break_discovery(fake_entry_points):
    @hookimpl
    def aq_emit(emission, scope, extra):
        pass

    _module("aq_fake_sig", aq_emit=aq_emit)
    fake_entry_points.append(FakeEntryPoint("sig", "aq_fake_sig", FakeDist("aq-fake-sig")))
    manager = get_plugin_manager()
    info = {i.name: i for i in manager.describe()}["sig"]
    assert info.status == "failed" and "extra" in (info.error or "")
    with pytest.raises(PluginError, match="plugin 'sig'"):
        get_plugin_manager(strict=True)


@pytest.mark.skipif(not __import__("os").environ.get("AQ_TEST_INSTALLED"), reason="only under tox")
def test_an_installed_third_party_metric_is_discovered_through_its_entry_point():
    """tox installs examples/aq-metric-example like a user would: aq finds it by entry point."""
    manager = get_plugin_manager()
    info = next(i for i in manager.describe() if i.distribution == "aq-metric-example")
    assert info.status == "loaded"
    assert "metric:no_shouting" in info.provides
    assert manager.metric_classes()["no_shouting"].__module__.startswith("aq_metric_example")
