"""Benchmark of aq's llama.cpp adapter (ungoverned): prints figures, asserts nothing.

- decode throughput of the adapter's own loop (pure greedy argmax in numpy) against
  llama-cpp-python's ``create_completion`` greedy on the same prompt, measured in one run with
  interleaved repetitions;
- the adapter's per-step overhead: time in ``accept`` + ``logits`` minus time inside
  ``llama_decode`` (µs per token, p50 / p99);
- the one-time costs per model: load, vocabulary bytes, llguidance tokenizer.

Run: ``python benchmarks/bench_llamacpp.py [--model smollm2] [--tokens 64] [--reps 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from aqcore.models import Message

PROMPT = [Message(role="user", content="Write a long story about a dragon who learns to cook.")]


def _ours(adapter: Any, n: int, decode_ns: list[int]) -> tuple[float, list[float], list[float], list[float]]:
    """Greedy-decode ``n`` tokens (ignoring EOS): tokens/s, and per step the µs of the whole
    step, of ``accept`` outside ``llama_decode``, and of ``logits()`` + argmax."""
    adapter.begin(PROMPT)
    steps: list[float] = []
    overheads: list[float] = []
    picks: list[float] = []
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(n):
        t0 = clock()
        before = decode_ns[0]
        token = int(np.argmax(adapter.logits()))
        t1 = clock()
        adapter.accept(token)
        t2 = clock()
        steps.append((t2 - t0) / 1e3)
        overheads.append((t2 - t1 - (decode_ns[0] - before)) / 1e3)
        picks.append((t1 - t0) / 1e3)
    return n / ((clock() - start) / 1e9), steps, overheads, picks


def _reference(llm: Any, prompt_ids: list[int], n: int) -> float:
    """Tokens/s of ``create_completion`` greedy, from its first streamed token to its last."""
    llm.reset()
    first = None
    count = 0
    for _chunk in llm.create_completion(
        prompt_ids, max_tokens=n, temperature=0.0, top_k=1, stream=True, stop=[]
    ):
        count += 1
        if first is None:
            first = time.perf_counter()
    if first is None or count < 2:
        return float("nan")
    return (count - 1) / (time.perf_counter() - first)


def _instrument_decode(adapter: Any) -> list[int]:
    """Wrap the adapter's llama_decode call to accumulate the ns spent inside it."""
    total = [0]
    decode = adapter._ctx._decode
    clock = time.perf_counter_ns

    def timed(ctx: Any, batch: Any) -> int:
        t0 = clock()
        rc = decode(ctx, batch)
        total[0] += clock() - t0
        return int(rc)

    adapter._ctx._decode = timed
    return total


def _python_cost_us(adapter: Any, n: int = 5000) -> float:
    """p50 µs of ``accept`` + ``logits`` with ``llama_decode`` replaced by a no-op: the adapter's
    own Python work per step, with warm caches (after a real decode the caches are cold)."""
    adapter.begin(PROMPT)
    ctx = adapter._ctx
    decode = ctx._decode
    ctx._decode = lambda _ctx, _batch: 0
    clock = time.perf_counter_ns
    samples = []
    try:
        for _ in range(n):
            t0 = clock()
            adapter.accept(5)
            adapter.logits()
            samples.append((clock() - t0) / 1e3)
            ctx.n -= 1  # nothing was decoded; keep the position
    finally:
        ctx._decode = decode
    return statistics.median(samples)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args()

    import llama_cpp
    from aq_llamacpp.adapter import LlamaCppAdapter
    from aq_llamacpp.vocab import build_vocabulary

    options: dict[str, Any] = {"n_ctx": 1024}
    if args.n_threads:
        options["n_threads"] = args.n_threads
    t0 = time.perf_counter()
    adapter = LlamaCppAdapter(args.model, **options)
    load_s = time.perf_counter() - t0
    vocab_ptr = llama_cpp.llama_model_get_vocab(adapter.llama.model)
    t0 = time.perf_counter()
    vocab = build_vocabulary(llama_cpp, vocab_ptr)
    vocab_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    adapter.llguidance_tokenizer()
    llg_s = time.perf_counter() - t0

    ref_kwargs: dict[str, Any] = {"n_ctx": 1024, "verbose": False}
    if args.n_threads:
        ref_kwargs["n_threads"] = args.n_threads
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr():
        reference = llama_cpp.Llama(model_path=str(adapter.resolved.path), **ref_kwargs)
    prompt_ids = adapter.tokenize_prompt(PROMPT)
    python_us = _python_cost_us(adapter)
    decode_ns = _instrument_decode(adapter)

    # Warm both paths once, then interleave the repetitions.
    _ours(adapter, 8, decode_ns)
    _reference(reference, prompt_ids, 8)
    ours_tps: list[float] = []
    ref_tps: list[float] = []
    steps: list[float] = []
    overheads: list[float] = []
    picks: list[float] = []
    for _ in range(args.reps):
        tps, step_us, over_us, pick_us = _ours(adapter, args.tokens, decode_ns)
        ours_tps.append(tps)
        steps += step_us
        overheads += over_us
        picks += pick_us
        ref_tps.append(_reference(reference, prompt_ids, args.tokens))

    ours_med, ref_med = statistics.median(ours_tps), statistics.median(ref_tps)
    print(f"model {adapter.model_name} ({adapter.resolved.path.name}), vocab {vocab.size}, "
          f"n_threads {adapter.llama.n_threads}, {args.reps} reps x {args.tokens} tokens, interleaved")
    print(f"load {load_s * 1e3:.0f} ms (vocab cached: first load builds it); "
          f"vocab bytes build {vocab_s * 1e3:.0f} ms; llguidance tokenizer {llg_s * 1e3:.0f} ms")
    print(f"aq loop (argmax)      : {ours_med:7.1f} tok/s  (reps: {', '.join(f'{x:.1f}' for x in ours_tps)})")
    print(f"create_completion     : {ref_med:7.1f} tok/s  (reps: {', '.join(f'{x:.1f}' for x in ref_tps)})")
    print(f"ratio aq/create_completion: {ours_med / ref_med:.3f}")
    print(f"step (logits+argmax+accept): p50 {_pct(steps, 0.5):.0f} us, p99 {_pct(steps, 0.99):.0f} us")
    print(f"accept() outside llama_decode: p50 {_pct(overheads, 0.5):.1f} us, "
          f"p99 {_pct(overheads, 0.99):.1f} us")
    print(f"accept() + logits() Python work alone (decode stubbed, warm caches): p50 {python_us:.1f} us")
    print(f"logits() + np.argmax: p50 {_pct(picks, 0.5):.1f} us, p99 {_pct(picks, 0.99):.1f} us")
    reference.close()
    adapter.close()


if __name__ == "__main__":
    main()
