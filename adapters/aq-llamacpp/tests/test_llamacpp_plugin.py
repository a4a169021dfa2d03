"""The plugin: lazy imports at discovery, the registration hook, and the installed entry point."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _registrations() -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
    from aq_llamacpp import plugin

    calls: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
    plugin.aq_register_adapters(lambda name, factory, **kw: calls.append((name, factory, kw)))
    return calls


def test_registers_the_llamacpp_token_adapter() -> None:
    [(name, factory, kwargs)] = _registrations()
    assert name == "llamacpp"
    assert kwargs["granularity"] == "token"
    assert "n_gpu_layers" in kwargs["description"]
    assert callable(factory)


def test_discovery_imports_neither_llama_cpp_nor_the_adapter() -> None:
    code = (
        "import sys, aq_llamacpp.plugin as p\n"
        "p.aq_register_adapters(lambda *a, **k: None)\n"
        "print(sorted(m for m in ('llama_cpp', 'aq_llamacpp.adapter', 'numpy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "llama_cpp" not in out.stdout and "aq_llamacpp.adapter" not in out.stdout, out.stdout


def test_package_attributes_load_lazily() -> None:
    import aq_llamacpp

    assert aq_llamacpp.resolve_model.__module__ == "aq_llamacpp.models"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        aq_llamacpp.nope  # noqa: B018


@pytest.mark.smollm2
def test_factory_builds_the_adapter() -> None:
    [(_, factory, _)] = _registrations()
    with factory("smollm2", n_ctx=128, n_threads=1) as adapter:
        assert type(adapter).__name__ == "LlamaCppAdapter"
        assert adapter.vocab.size == 49152


def _installed() -> bool:
    try:
        importlib.metadata.distribution("aq-llamacpp")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


not_installed = pytest.mark.skipif(
    not _installed(), reason="aq-llamacpp is not installed (pip install --no-deps ./adapters/aq-llamacpp)"
)


@not_installed
def test_entry_point_is_installed() -> None:
    [ep] = [ep for ep in importlib.metadata.entry_points(group="aq") if ep.name == "llamacpp"]
    assert ep.value == "aq_llamacpp.plugin"
    assert ep.dist is not None and ep.dist.name == "aq-llamacpp"


@not_installed
@pytest.mark.smollm2
def test_aq_plugin_manager_finds_and_builds_the_adapter() -> None:
    plugins = pytest.importorskip("aqcore.plugins")
    manager = plugins.get_plugin_manager(strict=True)
    manager.collect()
    provider = manager.adapters["llamacpp"]
    assert provider.granularity == "token"
    assert provider.plugin == "llamacpp"
    with manager.make_adapter("llamacpp", "smollm2", n_ctx=128) as adapter:
        assert adapter.model_name == "smollm2"
