"""Docs that cannot drift: every hookspec is documented with its signature, every Python
example of the API page runs, every CLI command and flag is in the CLI page."""

from __future__ import annotations

import argparse
import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from aqcore import hookspecs
from aqcore.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_HOOK_HEADING = re.compile(r"^## (aq_\w+)\(([^)]*)\)[ \t]*$", re.MULTILINE)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


# -- hooks ------------------------------------------------------------------------------
def documented_hooks(markdown: str) -> dict[str, list[str]]:
    """``{hook name: [parameter names]}`` of every ``## aq_<name>(<params>)`` heading."""
    return {
        name: [p.strip() for p in params.split(",") if p.strip()]
        for name, params in _HOOK_HEADING.findall(markdown)
    }


def hook_doc_problems(spec_module: types.ModuleType, markdown: str) -> list[str]:
    """One line per hookspec of ``spec_module.__all__`` that has no heading with its exact
    parameter names, in order."""
    documented = documented_hooks(markdown)
    problems = []
    for name in spec_module.__all__:
        if not name.startswith("aq_"):
            continue
        params = list(inspect.signature(getattr(spec_module, name)).parameters)
        expected = f"## {name}({', '.join(params)})"
        if name not in documented:
            problems.append(f"{name} is not documented; expected a heading {expected!r}")
        elif documented[name] != params:
            got = f"## {name}({', '.join(documented[name])})"
            problems.append(f"{name} is documented as {got!r}; expected {expected!r}")
    return problems


def test_every_hookspec_is_documented_with_its_signature() -> None:
    markdown = (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert hook_doc_problems(hookspecs, markdown) == []
    hooks = [name for name in hookspecs.__all__ if name.startswith("aq_")]
    assert len(hooks) == 8  # the four registration and the four lifecycle hooks


def test_no_heading_documents_a_hook_that_does_not_exist() -> None:
    documented = documented_hooks((DOCS / "hooks.md").read_text(encoding="utf-8"))
    assert set(documented) == {name for name in hookspecs.__all__ if name.startswith("aq_")}


def _fake_spec_module() -> types.ModuleType:
    module = types.ModuleType("fake_hookspecs")

    def aq_register_adapters(register: object) -> None: ...

    def aq_fake_hook(step: object, context: object) -> None: ...

    module.aq_register_adapters = aq_register_adapters  # type: ignore[attr-defined]
    module.aq_fake_hook = aq_fake_hook  # type: ignore[attr-defined]
    module.__all__ = ["aq_register_adapters", "aq_fake_hook", "hookimpl"]  # type: ignore[attr-defined]
    return module


def test_checker_fails_on_an_undocumented_hookspec() -> None:
    markdown = "# Hooks\n\n## aq_register_adapters(register)\n\ntext\n"
    problems = hook_doc_problems(_fake_spec_module(), markdown)
    assert problems == ["aq_fake_hook is not documented; expected a heading '## aq_fake_hook(step, context)'"]


def test_checker_fails_on_a_wrong_or_reordered_signature() -> None:
    markdown = "## aq_register_adapters(register)\n\n## aq_fake_hook(context, step)\n"
    problems = hook_doc_problems(_fake_spec_module(), markdown)
    assert len(problems) == 1 and "documented as '## aq_fake_hook(context, step)'" in problems[0]
    markdown = "## aq_register_adapters(register, extra)\n\n## aq_fake_hook(step, context)\n"
    assert len(hook_doc_problems(_fake_spec_module(), markdown)) == 1


def test_checker_passes_when_everything_is_documented() -> None:
    markdown = "## aq_register_adapters(register)\n\n## aq_fake_hook(step, context)\n"
    assert hook_doc_problems(_fake_spec_module(), markdown) == []


# -- Python API examples ----------------------------------------------------------------
def python_blocks(markdown: str) -> list[str]:
    return _PYTHON_BLOCK.findall(markdown)


API_BLOCKS = python_blocks((DOCS / "python-api.md").read_text(encoding="utf-8"))


def test_python_api_page_has_examples() -> None:
    assert len(API_BLOCKS) >= 4
    assert any("@inference_control(" in block and "aqcore.generate(" in block for block in API_BLOCKS)
    assert any("Runtime.from_config(" in block for block in API_BLOCKS)
    assert any("stream=True" in block for block in API_BLOCKS)


@pytest.mark.parametrize("index", range(len(API_BLOCKS)), ids=lambda i: f"block{i}")
def test_python_api_example_runs(index: int, tmp_path: Path) -> None:
    """Each block runs as-is, in its own interpreter, in an empty directory."""
    home = tmp_path / "aq-home"
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "AQ_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("AQ_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", API_BLOCKS[index]],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"block {index} failed:\n{API_BLOCKS[index]}\n--- stderr ---\n{proc.stderr}"
    assert proc.stdout.strip(), f"block {index} printed nothing"


def test_python_blocks_finds_only_python_fences() -> None:
    markdown = "```python\nprint(1)\n```\n\n```toml\nx = 1\n```\n\n```python\nprint(2)\n```\n"
    assert python_blocks(markdown) == ["print(1)\n", "print(2)\n"]


OWN_PAGES = ("index.md", "hooks.md", "adapters.md", "python-api.md", "policy.md", "state.md", "cli.md")


@pytest.mark.parametrize("page", OWN_PAGES)
def test_python_blocks_of_the_core_pages_compile(page: str) -> None:
    """Snippets that cannot run on their own (protocols, plugin modules) are at least valid Python."""
    for i, block in enumerate(python_blocks((DOCS / page).read_text(encoding="utf-8"))):
        compile(block, f"{page}[block {i}]", "exec")


# -- CLI --------------------------------------------------------------------------------
def cli_commands(parser: argparse.ArgumentParser, prefix: str = "aq") -> dict[str, argparse.ArgumentParser]:
    """``{"aq state show": parser, ...}`` for every (nested) sub-command."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{prefix} {name}"
                found[command] = sub
                found.update(cli_commands(sub, command))
    return found


def cli_doc_problems(parser: argparse.ArgumentParser, markdown: str) -> list[str]:
    """Commands of ``parser`` not mentioned in ``markdown``, and long flags that never appear."""
    problems = []
    for command, sub in cli_commands(parser).items():
        if not re.search(re.escape(command) + r"(?![\w-])", markdown):
            problems.append(f"command {command!r} is not mentioned")
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in markdown:
                    problems.append(f"flag {flag} of {command!r} is not mentioned")
    return problems


def test_every_cli_command_and_flag_is_documented() -> None:
    markdown = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = cli_commands(build_parser())
    assert {"aq generate", "aq policy check", "aq state show", "aq plugins"} <= set(commands)
    assert cli_doc_problems(build_parser(), markdown) == []


def test_cli_checker_fails_on_an_undocumented_command() -> None:
    parser = argparse.ArgumentParser(prog="aq")
    sub = parser.add_subparsers()
    state = sub.add_parser("state").add_subparsers()
    show = state.add_parser("show")
    show.add_argument("--json", action="store_true")
    state.add_parser("showall")
    markdown = "`aq state` ... `aq state show --json`"
    assert cli_doc_problems(parser, markdown) == ["command 'aq state showall' is not mentioned"]
    assert cli_doc_problems(parser, "aq state, aq state show, aq state showall") == [
        "flag --json of 'aq state show' is not mentioned"
    ]
