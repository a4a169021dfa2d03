"""LineageWriter: the runtime's path from a finished invocation to a stored, verifiable receipt."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from aqcore.lineage import Keyring, parse_statement, prove_inclusion, rotate_key, verify_leaf, verify_store
from aqcore.lineage.dsse import parse_envelope
from aqcore.lineage.keys import generate_key
from aqcore.lineage.writer import LineageWriter
from aqcore.models import GenerationResult, Observation, Scope, Verdict, VerdictKind


def result(conv: str = "c1", partial: bool = False) -> GenerationResult:
    obs = [
        Observation(
            index=i,
            token_id=i,
            text=f"w{i}",
            logprob=-0.5,
            surprisal=0.5,
            entropy=1.0,
            verdicts=[Verdict(metric="pii", kind=VerdictKind.REDACT)] if i == 1 else [],
        )
        for i in range(4)
    ]
    return GenerationResult(
        text="w0w1w2w3",
        finish_reason="stop",
        scope=Scope(tenant="acme", agent="bot", conversation=conv),
        state_status="partial" if partial else "full",
        confidence="reduced" if partial else "normal",
        degraded_reason="redis down" if partial else None,
        tokens=4,
        verdicts={"pii": {"redact": 1}},
        entropy_spent={"invocation": 2.0, "conversation": 2.0, "agent": 2.0},
        observations=obs,
        model="m",
        adapter="test",
        policy_name="standard",
        policy_digest="ab" * 32,
    )


def test_writer_records_verifiable_receipts_and_follows_rotation(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key(keys)
    writer = LineageWriter.open(None, str(tmp_path / "l.jsonl"), key=keys)
    events = [
        SimpleNamespace(
            kind="rollback", index=2, metric="deny", reason="phrase", detail={"chars": 3, "p": 0.5}
        )
    ]
    s1 = writer.record(result(), events, started_us=1)
    assert set(s1) >= {"id", "root", "seq", "prev"} and s1["seq"] == 1
    rotate_key(keys)  # another process rotates; the writer picks up the new key
    sealed = writer.record_sealed(result(partial=True), started_us=2)
    assert sealed.seq == 2 and sealed.prev == s1["digest"] and sealed.key_id != s1["key_id"]
    st = parse_statement(parse_envelope(sealed.envelope).payload)
    assert st.predicate["state_status"] == "partial" and st.predicate["degraded_reason"] == "redis down"
    report = verify_store(writer.store, Keyring.load(keys / "keyring.json"))
    assert report.ok, report.summary()
    writer.close()


def test_writer_leaves_cover_events_and_observations(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key(keys)
    writer = LineageWriter.open(None, (tmp_path / "l.jsonl").as_uri(), key=keys)
    events = [SimpleNamespace(kind="rollback", index=2, metric="deny", reason="phrase", detail={})]
    builder = writer.build(result(partial=True), events, started_us=5, t_us=9)
    kinds = [json.loads(leaf).get("event", "obs") for leaf in builder.leaves]
    assert kinds == ["start", "degraded", "obs", "obs", "rollback", "obs", "obs", "finish"]
    assert json.loads(builder.leaves[3])["v"] == ["pii:redact"]
    proof = prove_inclusion(builder.leaves, 4)
    assert verify_leaf(builder.leaves[4], proof, builder.root().hex())
