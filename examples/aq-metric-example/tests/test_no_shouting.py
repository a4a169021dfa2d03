"""Tests of the example metric, through aq's real loop with a scripted test model."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import aq_metric_example
import pytest

from aqcore.errors import PolicyError
from aqcore.plugins import get_plugin_manager
from aqcore.policy import build_policy
from aqcore.runtime import Runtime
from aqcore.testing.scripted import ScriptedAdapter


@pytest.fixture
def plugin_manager(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    """A plugin manager that discovers this package through its entry point, as an installed
    copy would be discovered."""
    monkeypatch.setenv("AQ_HOME", str(tmp_path))
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    eps = [
        importlib.metadata.EntryPoint(name=n, value=v, group="aq")
        for n, v in project["entry-points"]["aq"].items()
    ]
    real = importlib.metadata.entry_points

    def entry_points(**kw):  # type: ignore[no-untyped-def]
        return eps if kw.get("group") == "aq" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return get_plugin_manager()


def generate(pm, pieces: list[str], table: dict) -> str:  # type: ignore[no-untyped-def]
    policy = build_policy({"name": "example", "metrics": {"no_shouting": table}}, pm.metric_classes())
    with Runtime(adapter=ScriptedAdapter.from_pieces(pieces), policy=policy, plugin_manager=pm) as runtime:
        return runtime.generate("hi", agent="a", conversation="c").text


def test_discovered_through_the_entry_point(plugin_manager) -> None:  # type: ignore[no-untyped-def]
    assert plugin_manager.metric_classes()["no_shouting"] is aq_metric_example.NoShouting


def test_shouted_word_never_released(plugin_manager) -> None:  # type: ignore[no-untyped-def]
    text = generate(plugin_manager, ["This ", "is ", "VE", "RY", " important", "."], {})
    assert "VERY" not in text and "VE" not in text


def test_normal_text_and_short_capitals_pass(plugin_manager) -> None:  # type: ignore[no-untyped-def]
    pieces = ["OK, ", "the ", "USA ", "team ", "Won."]
    assert generate(plugin_manager, pieces, {}) == "OK, the USA team Won."


def test_halt(plugin_manager) -> None:  # type: ignore[no-untyped-def]
    assert generate(plugin_manager, ["Fine. ", "STOP", " now"], {"on_violation": "halt"}) == "Fine. "


def test_bad_setting_names_the_key(plugin_manager) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as info:
        generate(plugin_manager, [], {"min_letters": 1})
    assert info.value.key == "metrics.no_shouting.min_letters"
