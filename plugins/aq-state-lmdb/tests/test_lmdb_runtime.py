"""The LMDB store under the runtime and the ``aq`` command line, with the test LM: no lost update
from four processes on one conversation, tenants kept apart (state and lineage), the ``aq state``
commands, and state that outlives the process that wrote it."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog

import aqcore
from aqcore.cli.main import main
from aqcore.errors import UsageError
from aqcore.gate import GateMetric, MetricSettings
from aqcore.hookspecs import hookimpl
from aqcore.lineage import Keyring, generate_key, verify_store
from aqcore.lineage.dsse import parse_envelope
from aqcore.lineage.statement import parse_statement
from aqcore.logging import ensure_configured
from aqcore.models import Commitment, GenerationResult, Scope, Turn
from aqcore.plugins import get_plugin_manager
from aqcore.policy import build_policy
from aqcore.runtime import Runtime
from aqcore.state.journal import Journal
from aqcore.state.keys import agent_key, conversation_key
from aqcore.state.update import StateUpdate

WORKERS = 4
PER_WORKER = 100
AGENT = "bot"
CONVERSATION = "c1"
# sampled (seeded) so that every invocation spends a different amount; short, to keep it quick
SAMPLING: dict[str, Any] = {"temperature": 1.0, "max_tokens": 24}


class StampSettings(MetricSettings):
    """``[metrics.stamp]`` takes no settings."""


class Stamp(GateMetric):
    """Commits slots named by the invocation's prompt, one at conversation and one at agent
    scope, so that each invocation leaves commitments of its own to look for in state."""

    name: ClassVar[str] = "stamp"
    Settings = StampSettings

    def commitments(self) -> list[Commitment]:
        prompt, invocation = self.context.prompt, self.context.scope.invocation
        return [
            Commitment(slot=f"c_{prompt}", value=prompt, invocation=invocation, scope="conversation"),
            Commitment(slot=f"a_{prompt}", value=prompt, invocation=invocation, scope="agent"),
        ]


class StampPlugin:
    @hookimpl
    def aq_register_gate_metrics(self, register: Callable[..., None]) -> None:
        register(Stamp)


def make_runtime(store: str, journal: Path | str, **kwargs: Any) -> Runtime:
    """A runtime over the test LM whose policy binds the stamp metric (each process builds its own)."""
    pm = get_plugin_manager()
    pm.register(StampPlugin(), "inline-stamp", distribution="tests", version="0")
    policy = build_policy({"name": "lmdb-runtime", "metrics": {"stamp": {}}}, pm.metric_classes())
    return Runtime(
        adapter="test", model="default", policy=policy, store=store, journal=journal,
        plugin_manager=pm, **kwargs,
    )  # fmt: skip


def _invoke(store: str, journal: str, key: str, worker: int, n: int, barrier: Any, out: Any) -> None:
    """One worker process: ``n`` invocations on the shared conversation, each sealing a receipt
    in the same store; reports what each spent."""
    rows: list[tuple[str, str, float, str]] = []
    try:
        runtime = make_runtime(store, journal, lineage=store, key=key)
        try:
            runtime.adapter  # noqa: B018 - build the model before the start line, not inside the race
            barrier.wait(120)
            for i in range(n):
                prompt = f"w{worker}n{i}"
                result = runtime.generate(
                    prompt, agent=AGENT, conversation=CONVERSATION, seed=worker * n + i, **SAMPLING
                )
                assert isinstance(result, GenerationResult)
                spent = result.entropy_spent["invocation"]
                rows.append((result.scope.invocation, prompt, spent, result.state_status))
        finally:
            runtime.close()
        out.put((worker, rows, None))
    except BaseException as exc:  # reported to the parent, which fails the test with it
        out.put((worker, rows, f"{type(exc).__name__}: {exc}"))


def run_workers(store: str, journal: Path, key: Path) -> list[tuple[str, str, float, str]]:
    """``WORKERS`` spawned processes × ``PER_WORKER`` invocations on one conversation."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_invoke, args=(store, str(journal), str(key), w, PER_WORKER, barrier, out))
        for w in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [out.get(timeout=300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    errors = [f"worker {w}: {error}" for w, _, error in reports if error]
    assert not errors, errors
    return [row for _, rows, _ in sorted(reports) for row in rows]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Journals and keys under the test's directory, no stray aq.toml, and after the test aq's
    library logging again (the CLI configures structlog its own way)."""
    monkeypatch.setenv("AQ_HOME", str(tmp_path / "aq-home"))
    monkeypatch.delenv("AQ_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    structlog.reset_defaults()
    # loggers made earlier keep using structlog's defaults (every level) until it is configured
    ensure_configured()


@pytest.fixture
def aq(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``aq(*argv) -> (exit code, stdout, stderr)``, run in-process."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    key_dir = tmp_path / "keys"
    generate_key(key_dir)
    return key_dir


# -- no lost updates ----------------------------------------------------------------------------
def test_four_processes_times_one_hundred_invocations_lose_no_update(
    store_url: str, tmp_path: Path, keys: Path
) -> None:
    journal = tmp_path / "journal"
    rows = run_workers(store_url, journal, keys)
    assert len(rows) == WORKERS * PER_WORKER
    invocations = {inv for inv, _, _, _ in rows}
    assert len(invocations) == WORKERS * PER_WORKER

    chain = f"default:{AGENT}:{CONVERSATION}"
    with make_runtime(store_url, journal, lineage=store_url, key=str(keys)) as runtime:
        # An update whose compare-and-set lost every retry was journalled by its worker (a receipt
        # kept locally); the next invocation replays it. After the last one nobody did: do it now.
        runtime.state.replay()
        assert runtime.state.journal.pending_keys() == []
        assert runtime.lineage is not None
        runtime.lineage.flush(chain)
        state = runtime.load_state(AGENT, CONVERSATION)
        lineage = runtime.lineage.store
        report = verify_store(lineage, Keyring.load(keys / "keyring.json"))
        statements = [parse_statement(parse_envelope(e).payload) for e in lineage.records(chain)]

    partial = sum(1 for *_, status in rows if status != "full")
    order = [t.prompt.split("n")[0] for t in state.conversation.turns]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    print(f"\n{len(rows)} invocations, {partial} partial; turn order changes worker {switches} times")
    assert state.status == "full"
    total = sum(spent for _, _, spent, _ in rows)
    for scope_state in (state.conversation, state.agent):
        assert scope_state.version == WORKERS * PER_WORKER
        assert scope_state.entropy_spent == pytest.approx(total, rel=1e-9)
        assert scope_state.conflicts == []
    turns = state.conversation.turns
    assert len(turns) == WORKERS * PER_WORKER
    assert {t.invocation for t in turns} == invocations
    made_by = {prompt: inv for inv, prompt, _, _ in rows}
    assert {t.invocation: t.prompt for t in turns} == {inv: prompt for prompt, inv in made_by.items()}
    for scope_state, kind in ((state.conversation, "c"), (state.agent, "a")):
        assert set(scope_state.commitments) == {f"{kind}_{p}" for p in made_by}
        for slot, commitment in scope_state.commitments.items():
            prompt = slot[2:]
            assert (commitment.value, commitment.invocation) == (prompt, made_by[prompt])
    # every invocation's receipt is in the one chain, which verifies end to end
    assert report.ok, report.summary()
    assert report.records == WORKERS * PER_WORKER
    assert [s.seq for s in statements] == list(range(1, WORKERS * PER_WORKER + 1))
    assert {s.predicate["invocation"] for s in statements} == invocations


# -- tenancy ------------------------------------------------------------------------------------
def test_tenants_sharing_ids_never_see_each_others_state_or_lineage(
    store_url: str, tmp_path: Path, keys: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    journal = tmp_path / "journal"
    lineage = f"lmdb://{tmp_path / 'store'}?sync=false"  # the state environment holds lineage too
    # "acme2" starts with "acme": a prefix match without the separator would leak it into acme's
    with make_runtime(store_url, journal, tenant="acme", lineage=lineage, key=str(keys)) as a, make_runtime(
        store_url, journal, tenant="acme2", lineage=lineage, key=str(keys)
    ) as b:
        made = {
            tenant: [
                runtime.generate(f"{tenant}-{i}", agent=AGENT, conversation=CONVERSATION, seed=i, **SAMPLING)
                for i in range(n)
            ]
            for tenant, runtime, n in (("acme", a, 2), ("acme2", b, 3))
        }
        views = {"acme": a.load_state(AGENT, CONVERSATION), "acme2": b.load_state(AGENT, CONVERSATION)}

    for tenant, results in made.items():
        state = views[tenant]
        assert all(isinstance(r, GenerationResult) and r.scope.tenant == tenant for r in results)
        assert [t.invocation for t in state.conversation.turns] == [r.scope.invocation for r in results]
        assert state.conversation.version == state.agent.version == len(results)
        total = sum(r.entropy_spent["invocation"] for r in results)
        assert state.conversation.entropy_spent == pytest.approx(total)
        assert state.agent.entropy_spent == pytest.approx(total)
        prompts = {r.commitments[0].value for r in results}
        assert {c.value for c in state.conversation.commitments.values()} == prompts

    where = ("--store", store_url, "--journal", str(journal))
    for tenant, other in (("acme", "acme2"), ("acme2", "acme")):
        code, out, err = aq("state", "export", *where, "--tenant", tenant)
        assert code == 0, err
        exported = [json.loads(line) for line in out.splitlines()]
        scope = f"{tenant}:{AGENT}"
        expected = [f"agent/{scope}", f"conversation/{scope}:{CONVERSATION}"]
        assert sorted(doc["key"] for doc in exported) == expected
        assert not any(f"/{other}:" in line or f'"{other}"' in line for line in out.splitlines())

    trusted = Keyring.load(keys / "keyring.json")
    pm = get_plugin_manager()
    store = pm.open_lineage_store(lineage)
    try:
        assert sorted(store.chains()) == [f"acme2:{AGENT}:{CONVERSATION}", f"acme:{AGENT}:{CONVERSATION}"]
        for tenant, results in made.items():
            chain = f"{tenant}:{AGENT}:{CONVERSATION}"
            assert sorted(store.chains(f"{tenant}:")) == [chain]
            report = verify_store(store, trusted, prefix=f"{tenant}:")
            assert report.ok, report.summary()
            assert report.records == len(results)
            statements = [parse_statement(parse_envelope(e).payload) for e in store.records(chain)]
            assert [s.predicate["invocation"] for s in statements] == [r.scope.invocation for r in results]
            assert {s.chain for s in statements} == {chain}
    finally:
        store.close()

    # deleting one tenant's conversation leaves the other's alone
    code, out, err = aq(
        "state", "delete", "--store", store_url, "--journal", str(journal), "--tenant", "acme",
        "--agent", AGENT, "--conversation", CONVERSATION, "--yes",
    )  # fmt: skip
    assert code == 0, err
    with make_runtime(store_url, journal, tenant="acme2") as b:
        assert b.load_state(AGENT, CONVERSATION).conversation.version == 3


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
