"""Fixtures for the lineage tests: a key directory, a signer and chains of real receipts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aqcore.lineage import (
    Keyring,
    ReceiptBuilder,
    SealedReceipt,
    generate_key,
    load_signer,
    observation_record,
)
from aqcore.lineage.keys import Signer
from aqcore.lineage.receipt import next_link
from aqcore.lineage.statement import GENESIS_PREV

T0 = 1_700_000_000_000_000  # µs; keys below are valid from here for a year


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    generate_key(d, at_us=T0)
    return d


@pytest.fixture
def signer(key_dir: Path) -> Signer:
    return load_signer(key_dir, at_us=T0 + 1)


@pytest.fixture
def keyring(key_dir: Path) -> Keyring:
    return Keyring.load(key_dir / "keyring.json")


def make_receipt(
    signer: Signer,
    *,
    conversation: str = "c1",
    seq: int = 1,
    prev: str = GENESIS_PREV,
    invocation: str | None = None,
    end_us: int | None = None,
    leaves: int = 3,
    state_status: str = "full",
    text: str = "hello",
) -> SealedReceipt:
    inv = invocation or f"{conversation}-inv{seq}"
    start = T0 + 1000 * seq
    builder = ReceiptBuilder(
        tenant="acme", agent="bot", conversation=conversation, invocation=inv, start_us=start
    )
    builder.add_event("start", start)
    for i in range(leaves):
        builder.add_leaf(
            observation_record(
                i, f"tok{i} ", t_us=start + i, token_id=i, logprob=-0.25 * i, surprisal=0.25 * i, entropy=1.5
            )
        )
    return builder.seal(
        signer=signer,
        seq=seq,
        prev=prev,
        text=text,
        finish_reason="stop",
        model="m",
        model_digest="d" * 64,
        adapter="test",
        policy_name="standard",
        policy_digest="e" * 64,
        state_status=state_status,
        confidence="reduced" if state_status == "partial" else "normal",
        degraded_reason="state backend down" if state_status == "partial" else None,
        entropy_spent_nats={"invocation": 0.75, "conversation": 1.5},
        verdicts={"pii": {"redact": 1}},
        end_us=end_us if end_us is not None else start + 500,
    )


def make_chain(signer: Signer, n: int, conversation: str = "c1") -> list[SealedReceipt]:
    out: list[SealedReceipt] = []
    for _ in range(n):
        seq, prev = next_link(None) if not out else (out[-1].seq + 1, out[-1].digest)
        out.append(make_receipt(signer, conversation=conversation, seq=seq, prev=prev))
    return out


@pytest.fixture
def chain_factory(signer: Signer) -> Callable[..., list[SealedReceipt]]:
    return lambda n, conversation="c1": make_chain(signer, n, conversation)
