"""Shared fixtures: a fresh plugin manager per test, inline plugins that are always
unregistered, and a runtime factory over scripted adapters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if os.environ.get("AQ_TEST_INSTALLED"):
    # tox tests what users install: drop the checkout from sys.path so `import aqcore` finds
    # the installed wheel (the `tests` package is already imported and keeps working)
    _root = str(Path(__file__).resolve().parents[1])
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _root]
    for _name in [m for m in sys.modules if m == "aqcore" or m.startswith("aqcore.")]:
        del sys.modules[_name]

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aqcore.gate import GateMetric
from aqcore.hookspecs import hookimpl
from aqcore.plugins import AqPluginManager, get_plugin_manager
from aqcore.policy import build_policy
from aqcore.runtime import Runtime

_names = itertools.count()


@pytest.fixture(autouse=True)
def _isolated_aq_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes journals or keys into the real home directory."""
    monkeypatch.setenv("AQ_HOME", str(tmp_path_factory.mktemp("aq-home")))


@pytest.fixture
def pm() -> Iterator[AqPluginManager]:
    """A fresh plugin manager with the built-ins and no entry points."""
    manager = get_plugin_manager(entrypoints=False)
    yield manager
    for name in list(manager.plugins):
        if name.startswith("inline-"):
            manager.unregister(name)


class MetricPlugin:
    """An inline plugin registering the given metric classes."""

    def __init__(self, *classes: type[GateMetric]) -> None:
        self.classes = classes

    @hookimpl
    def aq_register_gate_metrics(self, register: Callable[..., None]) -> None:
        for cls in self.classes:
            register(cls)


@pytest.fixture
def register_metrics(pm: AqPluginManager) -> Callable[..., None]:
    def register(*classes: type[GateMetric]) -> None:
        pm.register(MetricPlugin(*classes), f"inline-{next(_names)}", distribution="tests", version="0")

    return register


@pytest.fixture
def make_runtime(pm: AqPluginManager, tmp_path: Any) -> Iterator[Callable[..., Runtime]]:
    """``make_runtime(adapter, policy_dict, store=..., **kwargs)``."""
    made: list[Runtime] = []

    def make(adapter: Any, policy: dict[str, Any] | None = None, **kwargs: Any) -> Runtime:
        doc = {"name": "test-policy", **(policy or {})}
        kwargs.setdefault("store", f"memory:{tmp_path}/{next(_names)}")
        kwargs.setdefault("journal", str(tmp_path / "journal"))
        runtime = Runtime(adapter=adapter, policy=build_policy(doc, pm.metric_classes()), plugin_manager=pm, **kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
