"""The test LM registers through aq's adapter hook; its factories name what they accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy
import pytest

from aqcore import hookspecs
from aqcore.errors import AdapterError
from aqcore.testing import NgramAdapter, NgramUnitAdapter, default_model
from aqcore.testing import plugin as test_plugin

TEXT = "Your parcel is on its way.\n\nWe are sorry for the delay with your parcel.\n"


def _registered() -> dict[str, dict[str, Any]]:
    pm = pluggy.PluginManager("aq")
    pm.add_hookspecs(hookspecs)
    pm.register(test_plugin, name="aq-test")
    found: dict[str, dict[str, Any]] = {}

    def register(name: str, factory: Any, granularity: str = "token", description: str = "") -> None:
        found[name] = {"factory": factory, "granularity": granularity, "description": description}

    pm.hook.aq_register_adapters(register=register)
    return found


def test_registers_test_and_test_units() -> None:
    found = _registered()
    assert set(found) == {"test", "test-units"}
    assert found["test"]["granularity"] == "token" and found["test-units"]["granularity"] == "unit"
    assert all(entry["description"] for entry in found.values())
    assert isinstance(found["test"]["factory"](), NgramAdapter)
    assert isinstance(found["test-units"]["factory"]("default"), NgramUnitAdapter)


def test_default_model_is_the_bundled_corpus() -> None:
    adapter = test_plugin.token_factory("default")
    assert adapter.model is default_model()
    assert adapter.model_name == "aq-test-ngram"


def test_a_txt_file_is_estimated(tmp_path: Path) -> None:
    path = tmp_path / "replies.txt"
    path.write_text(TEXT, encoding="utf-8")
    adapter = test_plugin.token_factory(str(path))
    units = test_plugin.unit_factory(str(path))
    assert adapter.model_name == units.model_name == "replies.txt"
    assert adapter.model_digest == units.model_digest != default_model().digest
    lm = adapter.model
    written = lm.decode(lm.greedy(lm.encode("assistant: "), 30))
    assert written and set(written.split()) <= set(TEXT.split())


@pytest.mark.parametrize("factory", [test_plugin.token_factory, test_plugin.unit_factory])
def test_unknown_models_name_the_model_and_what_is_accepted(factory: Any) -> None:
    with pytest.raises(AdapterError, match=r"unknown model 'gpt-4o'; expected \"default\" .* \.txt file"):
        factory("gpt-4o")


def test_bad_model_files_are_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(AdapterError, match=r"model file '.*missing\.txt' does not exist"):
        test_plugin.token_factory(str(missing))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(AdapterError, match="is not UTF-8 text"):
        test_plugin.token_factory(str(binary))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(AdapterError, match=r"cannot estimate a model from .*no paragraphs"):
        test_plugin.unit_factory(str(empty))
    directory = tmp_path / "dir.txt"
    directory.mkdir()
    with pytest.raises(AdapterError, match="cannot read model file"):
        test_plugin.token_factory(str(directory))


def test_options_are_rejected_by_name() -> None:
    with pytest.raises(AdapterError, match="adapter 'test' takes no options \\(got n_ctx, seed\\)"):
        test_plugin.token_factory("default", seed=1, n_ctx=2)
