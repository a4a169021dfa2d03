"""The LMDB store under the runtime and the ``aq`` command line, with the test LM: no lost update
from four processes on one conversation, tenants kept apart (state and lineage), the ``aq state``
commands, and state that outlives the process that wrote it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from store_runtime import AGENT, CONVERSATION, SAMPLING, check_no_lost_updates, check_tenants_kept_apart, make_runtime

import aqcore
from aqcore.errors import UsageError
from aqcore.models import Scope, Turn
from aqcore.state.journal import Journal
from aqcore.state.keys import agent_key, conversation_key
from aqcore.state.update import StateUpdate

# journals and keys under each test's directory (the fixtures come through conftest.py)
pytestmark = pytest.mark.usefixtures("isolated")


# -- no lost updates ----------------------------------------------------------------------------
def test_four_processes_times_one_hundred_invocations_lose_no_update(
    store_url: str, tmp_path: Path, keys: Path
) -> None:
    check_no_lost_updates(store_url, tmp_path / "journal", keys)


# -- tenancy ------------------------------------------------------------------------------------
def test_tenants_sharing_ids_never_see_each_others_state_or_lineage(
    store_url: str, tmp_path: Path, keys: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    lineage = f"lmdb://{tmp_path / 'store'}?sync=false"  # the state environment holds lineage too
    check_tenants_kept_apart(store_url, lineage, tmp_path / "journal", keys, aq)


def test_a_scope_id_that_could_reach_another_tenants_keys_is_refused(store_url: str, tmp_path: Path) -> None:
    with make_runtime(store_url, tmp_path / "journal", tenant="acme") as runtime:
        for agent, conversation in (("bot:c1", "x"), ("../acme2", "c1"), ("*", "c1"), ("bot", "c1/x")):
            with pytest.raises(UsageError, match="letters, digits"):
                runtime.generate("hi", agent=agent, conversation=conversation)
        with pytest.raises(UsageError, match="tenant must be"):
            runtime.generate("hi", agent="bot", conversation="c1", tenant="acme2:bot")
        assert list(runtime.state.backend.keys("")) == []  # nothing was written anywhere


# -- aq state show | export | delete | replay -----------------------------------------------------
def test_state_commands(store_url: str, tmp_path: Path, aq: Callable[..., tuple[int, str, str]]) -> None:
    journal = tmp_path / "journal"
    common = ("--store", store_url, "--journal", str(journal), "--tenant", "acme")
    with make_runtime(store_url, journal, tenant="acme") as runtime:
        results = [runtime.generate(f"p{i}", agent=AGENT, conversation=c, seed=i, **SAMPLING)
                   for i, c in enumerate(("c1", "c1", "c2"))]

    code, out, err = aq("state", "show", *common, "--agent", AGENT, "--conversation", "c1", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["state_status"] == "full"
    assert shown["scope"] == {"tenant": "acme", "agent": AGENT, "conversation": "c1"}
    turns = shown["conversation"]["turns"]
    assert [t["invocation"] for t in turns] == [r.scope.invocation for r in results[:2]]
    assert shown["conversation"]["version"] == 2
    assert shown["agent"]["version"] == 3
    assert "applied_updates" not in shown["conversation"]

    out_file = tmp_path / "export.jsonl"
    assert aq("state", "export", *common, "--out", str(out_file))[0] == 0
    exported = {doc["key"]: doc for doc in map(json.loads, out_file.read_text().splitlines())}
    assert set(exported) == {"agent/acme:bot", "conversation/acme:bot:c1", "conversation/acme:bot:c2"}
    assert exported["conversation/acme:bot:c2"]["version"] == 1
    assert exported["agent/acme:bot"]["doc"]["entropy_spent"] == pytest.approx(
        sum(r.entropy_spent["invocation"] for r in results)
    )

    code, out, err = aq("state", "delete", *common, "--agent", AGENT, "--conversation", "c1")
    assert code == 2 and "without --yes" in err
    code, out, _ = aq("state", "delete", *common, "--agent", AGENT, "--conversation", "c1", "--yes")
    assert (code, out.strip()) == (0, "deleted: conversation/acme:bot:c1")
    code, out, _ = aq("state", "delete", *common, "--agent", AGENT, "--conversation", "c1", "--yes")
    assert (code, out.strip()) == (1, "no such state: conversation/acme:bot:c1")
    code, out, _ = aq("state", "show", *common, "--agent", AGENT, "--conversation", "c1", "--json")
    assert json.loads(out)["conversation"]["turns"] == [] and json.loads(out)["agent"]["version"] == 3
    code, out, _ = aq("state", "delete", *common, "--agent", AGENT, "--yes")
    assert (code, out.strip()) == (0, "deleted: agent/acme:bot")
    code, out, _ = aq("state", "export", *common)
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["conversation/acme:bot:c2"]

    # updates the store did not take wait in the journal (as they would after an outage) ...
    scope = Scope(tenant="acme", agent=AGENT, conversation="c1")
    updates = [
        StateUpdate(key=conversation_key(scope), entropy=1.5,
                    turn=Turn(invocation="inv1", prompt="p", text="t", finish_reason="stop")),
        StateUpdate(key=agent_key(scope), entropy=1.5),
    ]
    for update in updates:
        Journal(journal, store_url).append(update)
    # ... until ``aq state replay`` puts them in the store, once
    for expected in (2, 0):
        code, out, err = aq("state", "replay", *common)
        assert (code, out.strip()) == (0, f"replayed {expected} journalled update(s) into {store_url}"), err
    code, out, _ = aq("state", "show", *common, "--agent", AGENT, "--conversation", "c1", "--json")
    shown = json.loads(out)
    assert [t["invocation"] for t in shown["conversation"]["turns"]] == ["inv1"]
    assert shown["agent"]["entropy_spent"] == pytest.approx(1.5)


# -- across processes ---------------------------------------------------------------------------
def test_state_written_by_one_process_is_read_by_the_next(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('name = "plain"\n')
    store = f"lmdb://{tmp_path / 'durable'}"  # the default: durable commits
    journal = tmp_path / "journal"
    # the child imports the same aqcore as this process (a checkout on PYTHONPATH, or installed)
    where = str(Path(aqcore.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "AQ_HOME": str(tmp_path / "aq-home"), "PYTHONPATH": path}

    def aq_process(*argv: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "aqcore.cli.main", *argv, "--store", store, "--journal", str(journal)],
            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    generate = ("generate", "--adapter", "test", "--model", "default", "--policy", str(policy), "--json")
    first = aq_process(*generate, "hello", "--agent", AGENT, "--conversation", CONVERSATION)
    second = aq_process(*generate, "hello again", "--agent", AGENT, "--conversation", CONVERSATION)
    assert first["state_status"] == second["state_status"] == "full"
    spent = first["entropy_spent"]["invocation"] + second["entropy_spent"]["invocation"]
    assert second["entropy_spent"]["conversation"] == pytest.approx(spent)

    shown = aq_process("state", "show", "--agent", AGENT, "--conversation", CONVERSATION, "--json")
    turns = shown["conversation"]["turns"]
    assert [t["invocation"] for t in turns] == [first["scope"]["invocation"], second["scope"]["invocation"]]
    assert [t["prompt"] for t in turns] == ["hello", "hello again"]
    assert [t["text"] for t in turns] == [first["text"], second["text"]]
    assert shown["conversation"]["version"] == 2


# -- store identity and credentials ----------------------------------------------------------------
def test_journalled_updates_are_replayed_whatever_the_url_options(
    tmp_path: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    journal = tmp_path / "journal"
    directory = tmp_path / "store"
    scope = Scope(agent=AGENT, conversation=CONVERSATION)
    Journal(journal, f"lmdb://{directory}?sync=false").append(StateUpdate(key=agent_key(scope), entropy=1.0))
    code, out, err = aq("state", "replay", "--store", f"lmdb://{directory}", "--journal", str(journal))
    assert (code, out.split(" into ")[0]) == (0, "replayed 1 journalled update(s)"), err
