"""The Redis store under the runtime and the ``aq`` command line, with the test LM and a real
redis-server: no lost update from four processes on one conversation; a server killed and
restarted in the middle of a run of invocations (they run degraded, journal their updates, and
the next invocation after the restart replays them); tenants kept apart (state and lineage); the
``aq state`` commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer
from store_runtime import AGENT, CONVERSATION, SAMPLING, check_no_lost_updates, check_tenants_kept_apart, make_runtime

from aqcore.lineage import Keyring, verify_store
from aqcore.lineage.dsse import parse_envelope
from aqcore.lineage.statement import parse_statement
from aqcore.models import GenerationResult, Turn
from aqcore.plugins import get_plugin_manager
from aqcore.runtime import Runtime

# a dead server is noticed in milliseconds (connection refused); a hung one within a second
FAST = "connect_timeout=0.2&timeout=0.5&retries=0"

# journals and keys under each test's directory (the fixtures come through conftest.py)
pytestmark = pytest.mark.usefixtures("isolated")


def chain_statements(url: str, chain: str) -> list[Any]:
    store = get_plugin_manager().open_lineage_store(url)
    try:
        return [parse_statement(parse_envelope(envelope).payload) for envelope in store.records(chain)]
    finally:
        store.close()


# -- no lost updates ----------------------------------------------------------------------------
def test_four_processes_times_one_hundred_invocations_lose_no_update(
    store_url: str, tmp_path: Path, keys: Path
) -> None:
    check_no_lost_updates(store_url, tmp_path / "journal", keys)


# -- the server dies in the middle of a run -------------------------------------------------------
RUN = 12
OUTAGE = range(4, 8)  # killed before invocation 4, restarted before invocation 8


def run_of_invocations(
    runtime: Runtime, server: RedisServer | None = None, fault: str = "kill"
) -> list[GenerationResult]:
    """``RUN`` invocations on one conversation; with ``server``, it is killed and restarted (or
    frozen and thawed) midway. The one in the middle of the outage streams, to see each emission
    as the consumer does."""
    results = []
    for i in range(RUN):
        if server is not None and i == OUTAGE.start:
            server.kill() if fault == "kill" else server.pause()
        if server is not None and i == OUTAGE.stop:
            # restarted on the same port and directory, the AOF is replayed; a thawed server
            # answers whatever requests are still queued on its sockets
            server.start() if fault == "kill" else server.resume()
        options: dict[str, Any] = {"agent": AGENT, "conversation": CONVERSATION, "seed": i, **SAMPLING}
        if i == 6:
            stream = runtime.generate(f"p{i}", stream=True, **options)
            streamed = list(stream)  # type: ignore[arg-type]
            result = stream.result  # type: ignore[union-attr]
            assert streamed and streamed == result.emissions
        else:
            result = runtime.generate(f"p{i}", **options)
        assert isinstance(result, GenerationResult)
        results.append(result)
    return results


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_server_down_or_frozen_mid_run_loses_nothing(
    fault: str, fresh_server: RedisServer, store_url: str, tmp_path: Path, keys: Path
) -> None:
    url = f"{fresh_server.url}?{FAST}"
    journal = tmp_path / "journal"
    with make_runtime(url, journal, lineage=url, key=str(keys), state_timeout_s=2.0) as runtime:
        results = run_of_invocations(runtime, fresh_server, fault)
        assert runtime.state.journal.pending_keys() == []  # invocation 8 replayed the outage's updates
        state = runtime.load_state(AGENT, CONVERSATION)

    for i, result in enumerate(results):
        flags = (result.state_status, result.confidence, result.state_committed)
        if i in OUTAGE:
            assert flags == ("partial", "reduced", False)
            assert f"127.0.0.1:{fresh_server.port}" in (result.degraded_reason or "")
            assert result.emissions and all(
                (e.state_status, e.confidence) == ("partial", "reduced") for e in result.emissions
            )
            assert result.receipt is not None and result.receipt["status"] == "pending"
        else:
            assert flags == ("full", "normal", True)
            assert all((e.state_status, e.confidence) == ("full", "normal") for e in result.emissions)
            assert result.receipt is not None and result.receipt["seq"] == i + 1

    # the same run against a server that never went away
    with make_runtime(store_url, tmp_path / "journal-ref") as reference:
        expected_results = run_of_invocations(reference)
        expected = reference.load_state(AGENT, CONVERSATION)

    assert [r.text for r in results] == [r.text for r in expected_results]
    assert state.status == "full"
    spent = sum(r.entropy_spent["invocation"] for r in results)
    for got, want in ((state.conversation, expected.conversation), (state.agent, expected.agent)):
        assert got.version == want.version == RUN
        assert got.entropy_spent == pytest.approx(want.entropy_spent, rel=1e-9)
        assert got.entropy_spent == pytest.approx(spent, rel=1e-9)
        assert {s: c.value for s, c in got.commitments.items()} == {
            s: c.value for s, c in want.commitments.items()
        }
        assert got.conflicts == []

    def view(turns: list[Turn]) -> list[tuple[str, str, str]]:
        return [(t.prompt, t.text, t.finish_reason) for t in turns]

    assert view(state.conversation.turns) == view(expected.conversation.turns)
    assert [t.invocation for t in state.conversation.turns] == [r.scope.invocation for r in results]
    assert [t.state_status for t in state.conversation.turns] == [
        "partial" if i in OUTAGE else "full" for i in range(RUN)
    ]

    # every receipt reached the stream, in order, chained, and the degraded ones say so
    chain = f"default:{AGENT}:{CONVERSATION}"
    statements = chain_statements(url, chain)
    assert [s.seq for s in statements] == list(range(1, RUN + 1))
    assert [s.predicate["invocation"] for s in statements] == [r.scope.invocation for r in results]
    assert [s.predicate["state_status"] for s in statements] == [r.state_status for r in results]
    store = get_plugin_manager().open_lineage_store(url)
    try:
        report = verify_store(store, Keyring.load(keys / "keyring.json"))
    finally:
        store.close()
    assert report.ok, report.summary()
    assert report.records == RUN


# -- tenancy ------------------------------------------------------------------------------------
def test_tenants_sharing_ids_never_see_each_others_state_or_lineage(
    store_url: str, tmp_path: Path, keys: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    check_tenants_kept_apart(store_url, store_url, tmp_path / "journal", keys, aq)


# -- aq state show | export | delete | replay -----------------------------------------------------
def test_state_commands(
    fresh_server: RedisServer, tmp_path: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    url = f"{fresh_server.url}?{FAST}"
    journal = tmp_path / "journal"
    common = ("--store", url, "--journal", str(journal), "--tenant", "acme")
    with make_runtime(url, journal, tenant="acme") as runtime:
        results = [
            runtime.generate(f"p{i}", agent=AGENT, conversation=c, seed=i, **SAMPLING)
            for i, c in enumerate(("c1", "c1", "c2"))
        ]

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

    # while the server is down: show says partial (exit 1), export and delete fail with exit 1 ...
    fresh_server.kill()
    with make_runtime(url, journal, tenant="acme") as runtime:
        down = runtime.generate("while down", agent=AGENT, conversation="c3", seed=1, **SAMPLING)
    assert isinstance(down, GenerationResult) and down.state_status == "partial"
    code, out, _ = aq("state", "show", *common, "--agent", AGENT, "--conversation", "c3", "--json")
    shown = json.loads(out)
    assert (code, shown["state_status"]) == (1, "partial")
    # ... what this host journalled is what show has to offer
    assert [t["invocation"] for t in shown["conversation"]["turns"]] == [down.scope.invocation]
    for argv in (("export",), ("delete", "--agent", AGENT, "--conversation", "c2", "--yes"), ("replay",)):
        code, _, err = aq("state", *argv, *common)
        assert code == 1 and f"127.0.0.1:{fresh_server.port}" in err, (argv, err)
    # ... and once it is back, ``aq state replay`` puts the journalled updates in the store, once
    fresh_server.start()
    for expected in (2, 0):
        code, out, err = aq("state", "replay", *common)
        assert (code, out.strip()) == (0, f"replayed {expected} journalled update(s) into {url}"), err
    code, out, _ = aq("state", "show", *common, "--agent", AGENT, "--conversation", "c3", "--json")
    shown = json.loads(out)
    assert (code, shown["state_status"], shown["conversation"]["version"]) == (0, "full", 1)
    assert [t["invocation"] for t in shown["conversation"]["turns"]] == [down.scope.invocation]
    assert shown["agent"]["entropy_spent"] == pytest.approx(down.entropy_spent["invocation"])


# -- store identity and credentials ----------------------------------------------------------------
def test_journalled_updates_are_replayed_whatever_the_client_options(
    fresh_server: RedisServer, tmp_path: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    journal = tmp_path / "journal"
    fresh_server.kill()
    with make_runtime(f"{fresh_server.url}?{FAST}", journal) as runtime:
        down = runtime.generate("while down", agent=AGENT, conversation=CONVERSATION, seed=1, **SAMPLING)
    assert isinstance(down, GenerationResult) and down.state_status == "partial"
    fresh_server.start()
    code, out, err = aq("state", "replay", "--store", fresh_server.url, "--journal", str(journal))
    assert (code, out.split(" into ")[0]) == (0, "replayed 2 journalled update(s)"), err


def test_state_commands_never_print_the_store_password(
    fresh_server: RedisServer, tmp_path: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    url = f"redis://:s3cret@127.0.0.1:{fresh_server.port}/0?{FAST}"
    where = ("--store", url, "--journal", str(tmp_path / "journal"))
    for argv in (("show", "--agent", AGENT, "--conversation", CONVERSATION, "--json"), ("replay",)):
        _, out, err = aq("state", *argv, *where)
        assert "s3cret" not in out + err, (argv, out, err)
