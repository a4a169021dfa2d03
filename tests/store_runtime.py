"""What the store packages' runtime tests share: the test LM under a policy that binds the inline
``stamp`` metric, the no-lost-updates test (four spawned processes on one conversation), and the
fixtures that isolate each test and run ``aq`` in-process.

A store package's conftest.py puts this directory on ``sys.path`` (which ``spawn`` hands on to
the worker processes, so they can import :func:`_invoke` from here) and re-exports the fixtures:
``from store_runtime import aq, isolated, keys``. A runtime test module asks for ``isolated`` for
all its tests with ``pytestmark = pytest.mark.usefixtures("isolated")``.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog

from aqcore.cli.main import main
from aqcore.gate import GateMetric, MetricSettings
from aqcore.hookspecs import hookimpl
from aqcore.lineage import Keyring, generate_key, verify_store
from aqcore.lineage.dsse import parse_envelope
from aqcore.lineage.statement import parse_statement
from aqcore.logging import ensure_configured
from aqcore.models import Commitment, GenerationResult
from aqcore.plugins import get_plugin_manager
from aqcore.policy import build_policy
from aqcore.runtime import Runtime

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
    """A runtime over the test LM whose policy binds the stamp metric (each process builds its own).
    The policy is named after the store's scheme: ``lmdb-runtime``, ``redis-runtime``."""
    pm = get_plugin_manager()
    pm.register(StampPlugin(), "inline-stamp", distribution="tests", version="0")
    name = f"{store.split(':', 1)[0]}-runtime"
    policy = build_policy({"name": name, "metrics": {"stamp": {}}}, pm.metric_classes())
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


def check_no_lost_updates(store: str, journal: Path, key: Path) -> None:
    """The body of each store's no-lost-updates test: ``run_workers`` on ``store``, then every
    update is in state (turns, commitments, spend, versions at both scopes) and every receipt in
    the one chain, which verifies end to end."""
    rows = run_workers(store, journal, key)
    assert len(rows) == WORKERS * PER_WORKER
    invocations = {inv for inv, _, _, _ in rows}
    assert len(invocations) == WORKERS * PER_WORKER

    chain = f"default:{AGENT}:{CONVERSATION}"
    with make_runtime(store, journal, lineage=store, key=str(key)) as runtime:
        # An update whose compare-and-set lost every retry was journalled by its worker (a receipt
        # kept locally); the next invocation replays it. After the last one nobody did: do it now.
        runtime.state.replay()
        assert runtime.state.journal.pending_keys() == []
        assert runtime.lineage is not None
        runtime.lineage.flush(chain)
        state = runtime.load_state(AGENT, CONVERSATION)
        lineage = runtime.lineage.store
        report = verify_store(lineage, Keyring.load(key / "keyring.json"))
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



def check_tenants_kept_apart(
    store: str, lineage: str, journal: Path, key: Path, aq: Callable[..., tuple[int, str, str]]
) -> None:
    """The body of each store's tenancy test: two tenants with the same agent and conversation
    ids ("acme2" starts with "acme", so a prefix match without the separator would leak) see
    only their own state, exports, lineage chains and receipts, and deleting one tenant's
    conversation leaves the other's alone."""
    with make_runtime(store, journal, tenant="acme", lineage=lineage, key=str(key)) as a, make_runtime(
        store, journal, tenant="acme2", lineage=lineage, key=str(key)
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

    where = ("--store", store, "--journal", str(journal))
    for tenant, other in (("acme", "acme2"), ("acme2", "acme")):
        code, out, err = aq("state", "export", *where, "--tenant", tenant)
        assert code == 0, err
        exported = [json.loads(line) for line in out.splitlines()]
        scope = f"{tenant}:{AGENT}"
        expected = [f"agent/{scope}", f"conversation/{scope}:{CONVERSATION}"]
        assert sorted(doc["key"] for doc in exported) == expected
        assert not any(f"/{other}:" in line or f'"{other}"' in line for line in out.splitlines())

    trusted = Keyring.load(key / "keyring.json")
    lineage_store = get_plugin_manager().open_lineage_store(lineage)
    try:
        assert sorted(lineage_store.chains()) == [f"acme2:{AGENT}:{CONVERSATION}", f"acme:{AGENT}:{CONVERSATION}"]
        for tenant, results in made.items():
            chain = f"{tenant}:{AGENT}:{CONVERSATION}"
            assert sorted(lineage_store.chains(f"{tenant}:")) == [chain]
            report = verify_store(lineage_store, trusted, prefix=f"{tenant}:")
            assert report.ok, report.summary()
            assert report.records == len(results)
            statements = [parse_statement(parse_envelope(e).payload) for e in lineage_store.records(chain)]
            assert [s.predicate["invocation"] for s in statements] == [r.scope.invocation for r in results]
            assert {s.chain for s in statements} == {chain}
    finally:
        lineage_store.close()

    code, out, err = aq(
        "state", "delete", *where, "--tenant", "acme", "--agent", AGENT, "--conversation", CONVERSATION, "--yes"
    )
    assert code == 0, err
    with make_runtime(store, journal, tenant="acme2") as b:
        assert b.load_state(AGENT, CONVERSATION).conversation.version == 3

@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
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
