"""Lineage costs: µs per leaf (record + canonical bytes + leaf hash) and receipts verified per
second. Targets: ≤ 20 µs per leaf (p50), ≥ 3,000 receipts/s. Prints figures; asserts nothing.

    python benchmarks/bench_lineage.py [--leaves 20000] [--receipts 3000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import rfc8785

from aqcore.lineage import (
    Keyring,
    ReceiptBuilder,
    generate_key,
    load_signer,
    observation_record,
    verify_records,
)
from aqcore.lineage.statement import GENESIS_PREV


def bench_leaves(n: int) -> tuple[float, float, float]:
    builder = ReceiptBuilder(tenant="acme", agent="support", conversation="c1", invocation="bench")
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        builder.add_leaf(
            observation_record(
                i,
                " governance",
                t_us=1_700_000_000_000_000 + i,
                token_id=12345 + i,
                logprob=-0.6931,
                surprisal=0.6931,
                entropy=2.5,
                verdicts=(),
            )
        )
        samples.append(clock() - t0)
    samples.sort()
    rec = observation_record(
        1,
        " governance",
        t_us=1_700_000_000_000_000,
        token_id=12345,
        logprob=-0.6931,
        surprisal=0.6931,
        entropy=2.5,
    )
    t0 = clock()
    for _ in range(n):
        rfc8785.dumps(rec)
    ref = (clock() - t0) / n / 1000
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000, ref


def bench_verify(n: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        generate_key(d)
        signer = load_signer(d)
        keyring = Keyring.load(f"{d}/keyring.json")
    envelopes, prev = [], GENESIS_PREV
    for seq in range(1, n + 1):
        b = ReceiptBuilder(tenant="acme", agent="support", conversation="c1", invocation=f"inv{seq}")
        for i in range(32):
            b.add_leaf(observation_record(i, " tok", t_us=seq * 1000 + i, token_id=i, surprisal=0.1))
        r = b.seal(
            signer=signer,
            seq=seq,
            prev=prev,
            text="some released text",
            finish_reason="stop",
            model="smollm2-135m",
            model_digest="ab" * 32,
            adapter="llamacpp",
            policy_name="standard",
            policy_digest="cd" * 32,
            entropy_spent_nats={"invocation": 3.2, "conversation": 9.1, "agent": 40.0},
            verdicts={"pii": {"redact": 1}, "deny_phrases": {"rollback": 2}},
        )
        envelopes.append(r.envelope)
        prev = r.digest
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        report = verify_records(envelopes, keyring)
        runs.append(time.perf_counter() - t0)
        assert report.ok, report.summary()
    return n / statistics.median(runs), len(envelopes[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=20_000)
    parser.add_argument("--receipts", type=int, default=3_000)
    args = parser.parse_args()
    p50, p99, ref = bench_leaves(args.leaves)
    print(
        f"leaf: p50 {p50:.2f} µs, p99 {p99:.2f} µs per leaf (target ≤ 20 µs); "
        f"rfc8785.dumps alone on the same record: {ref:.2f} µs"
    )
    rate, size = bench_verify(args.receipts)
    print(f"verify: {rate:,.0f} receipts/s (target ≥ 3,000), envelope {size} bytes")


if __name__ == "__main__":
    main()
