"""Benchmark of aq on llama.cpp: prints figures, asserts nothing.

Adapter (``--part adapter``):

- decode throughput of the adapter's own loop (pure greedy argmax in numpy) against
  llama-cpp-python's ``create_completion`` greedy on the same prompt, measured in one run with
  interleaved repetitions;
- the adapter's per-step overhead: time in ``accept`` + ``logits`` minus time inside
  ``llama_decode`` (µs per token, p50 / p99);
- the one-time costs per model: load, vocabulary bytes, llguidance tokenizer.

Governed vs ungoverned (``--part governed``), one adapter, the same prompt and ``max_tokens``,
greedy, interleaved repetitions (the order rotates every repetition):

- ``raw``: the adapter's own greedy loop (``logits`` → argmax → ``accept``), no aq loop;
- ``aq empty``: ``Runtime.generate`` with a policy that enables no metric;
- ``aq standard``: ``Runtime.generate`` with ``examples/policies/support-agent.toml``.

Decode throughput is released tokens over the time from the end of ``begin()`` (the prompt
is evaluated) to the end of the generation; for aq that includes the state commit at the
end. The headline ratio aq / raw is the median over repetitions of each repetition's own
ratio: the three variants of a repetition run back to back, so a change in the machine's load
between repetitions cancels out (targets: ≥ 0.99 empty, ≥ 0.97 standard). The ratio of the
median throughputs, of the median step times and the ratio implied by aq's own CPU time are
printed beside it. Then one more, instrumented, run of the standard policy (kept out of the
throughput runs) times what aq does per token: the gate (every metric's ``mask``, the
``Judge`` verdict on each candidate, ``on_commit``), the loop's ``Distribution`` (scaling and
log-sum-exp) and the ``Sampler`` draw, as p50 / p99 µs per released token.

Run: ``python benchmarks/bench_llamacpp.py [--model smollm2] [--tokens 96] [--reps 21]
[--part all|adapter|governed] [--n-threads 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aqcore.models import Message  # noqa: E402

STANDARD_POLICY = ROOT / "examples" / "policies" / "support-agent.toml"

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
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--part", choices=("all", "adapter", "governed"), default="all")
    args = parser.parse_args()
    if args.part in ("all", "adapter"):
        adapter_part(args)
    if args.part in ("all", "governed"):
        governed_part(args)


def adapter_part(args: argparse.Namespace) -> None:
    """The adapter's own loop against create_completion, and its one-time costs."""
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


# -- governed vs ungoverned -------------------------------------------------------------------


def _raw(adapter: Any, n: int) -> tuple[int, float]:
    """The adapter's own greedy loop, stopping at EOS like aq: (tokens, decode seconds)."""
    adapter.begin(PROMPT)
    eos = adapter.vocab.eos_ids
    count = 0
    start = time.perf_counter()
    for _ in range(n):
        token = int(np.argmax(adapter.logits()))
        if token in eos:
            break
        adapter.accept(token)
        count += 1
    return count, time.perf_counter() - start


class _BeginClock:
    """Records when the adapter's ``begin`` returns and, per ``accept``, the wall clock and this
    thread's CPU clock, and the CPU time this thread spent inside ``llama_decode`` (instance
    attributes, the same for every variant: a few clock reads per token)."""

    def __init__(self, adapter: Any) -> None:
        self.at = 0.0
        self.walls: list[int] = []
        self.cpus: list[int] = []
        self.in_decode: list[int] = []  # thread CPU ns inside llama_decode, cumulative per accept
        self.decode_walls: list[int] = []  # wall ns of each llama_decode
        inside = [0]
        begin = adapter.begin
        accept = adapter.accept
        ctx = adapter._ctx
        decode = ctx._decode
        wall = time.perf_counter_ns
        cpu = time.thread_time_ns

        def timed_begin(messages: list[Message]) -> None:
            begin(messages)
            for series in (self.walls, self.cpus, self.in_decode, self.decode_walls):
                series.clear()
            self.at = time.perf_counter()

        def timed_accept(token: int) -> None:
            accept(token)
            self.walls.append(wall())
            self.cpus.append(cpu())
            self.in_decode.append(inside[0])

        def timed_decode(c: Any, batch: Any) -> int:
            c0, w0 = cpu(), wall()
            rc = decode(c, batch)
            self.decode_walls.append(wall() - w0)
            inside[0] += cpu() - c0
            return int(rc)

        adapter.begin = timed_begin
        adapter.accept = timed_accept
        ctx._decode = timed_decode

    def steps_us(self) -> list[float]:
        """µs between consecutive accepts of the last generation: one decode step each."""
        return [(b - a) / 1e3 for a, b in itertools.pairwise(self.walls)]

    def outside_decode_us(self) -> list[float]:
        """Per step, this thread's CPU µs outside ``llama_decode``: what the loop around the model
        costs, insensitive to other processes taking the CPU away."""
        cpu = [b - a for a, b in itertools.pairwise(self.cpus)]
        dec = [b - a for a, b in itertools.pairwise(self.in_decode)]
        return [(c - d) / 1e3 for c, d in zip(cpu, dec, strict=True)]

    def decode_us(self) -> list[float]:
        return [d / 1e3 for d in self.decode_walls[1:]]


_conversations = itertools.count()


def _governed(runtime: Any, clock: _BeginClock, n: int) -> tuple[int, float, list[int], Any]:
    """One aq generation: (released tokens, decode seconds, token ids, result)."""
    result = runtime.generate(
        PROMPT[0].content, agent="bench", conversation=f"c{next(_conversations)}", max_tokens=n
    )
    end = time.perf_counter()
    return result.tokens, end - clock.at, [o.token_id for o in result.observations], result


class _GateTimer:
    """Wraps, for one instrumented run, every metric's ``mask`` and ``on_commit``, the Judge's
    verdict, the loop's Distribution and the Sampler's draw, and adds their time up per
    released token (a token's sample is closed when the adapter accepts it)."""

    def __init__(self, adapter: Any, metric_classes: dict[str, type]) -> None:
        from aqcore.gate import GateMetric
        from aqcore.loop import judge as judge_module
        from aqcore.loop import tokens as tokens_module
        from aqcore.sampling import Distribution, Sampler

        self.gate: list[float] = []
        self.dist: list[float] = []
        self.draw: list[float] = []
        self._acc = {"gate": 0.0, "dist": 0.0, "draw": 0.0}
        self._undo: list[Callable[[], None]] = []
        clock = time.perf_counter_ns
        acc = self._acc

        def wrap(owner: Any, name: str, bucket: str) -> None:
            original = owner.__dict__[name]

            def timed(*a: Any, **k: Any) -> Any:
                t0 = clock()
                try:
                    return original(*a, **k)
                finally:
                    acc[bucket] += (clock() - t0) / 1e3

            setattr(owner, name, timed)
            self._undo.append(lambda: setattr(owner, name, original))

        for cls in set(metric_classes.values()):
            for method in ("mask", "on_commit"):
                if method in cls.__dict__ and cls.__dict__[method] is not GateMetric.__dict__[method]:
                    wrap(cls, method, "gate")
        wrap(judge_module.Judge, "judge", "gate")
        wrap(Sampler, "draw", "draw")

        class TimedDistribution(Distribution):
            __slots__ = ()

            def __init__(self, *a: Any, **k: Any) -> None:
                t0 = clock()
                super().__init__(*a, **k)
                acc["dist"] += (clock() - t0) / 1e3

        tokens_module.Distribution = TimedDistribution  # type: ignore[misc]
        self._undo.append(lambda: setattr(tokens_module, "Distribution", Distribution))

        accept = adapter.accept

        def closing_accept(token: int) -> None:
            accept(token)
            self.gate.append(acc["gate"])
            self.dist.append(acc["dist"])
            self.draw.append(acc["draw"])
            for key in acc:
                acc[key] = 0.0

        adapter.accept = closing_accept
        self._undo.append(lambda: setattr(adapter, "accept", accept))

    def close(self) -> None:
        if self.gate:  # the final judgement at the end belongs to the last token
            self.gate[-1] += self._acc["gate"]
        for undo in reversed(self._undo):
            undo()


def governed_part(args: argparse.Namespace) -> None:
    """aq (empty policy, standard policy) against the adapter's raw greedy loop."""
    from aqcore.plugins import get_plugin_manager
    from aqcore.policy import build_policy
    from aqcore.runtime import Runtime

    options: dict[str, Any] = {"n_ctx": 1024}
    if args.n_threads:
        options["n_threads"] = args.n_threads
    pm = get_plugin_manager()
    adapter = pm.make_adapter("llamacpp", args.model, **options)
    clock = _BeginClock(adapter)
    journal = tempfile.mkdtemp(prefix="aq-bench-")

    def runtime(policy: Any) -> Any:
        return Runtime(adapter=adapter, policy=policy, plugin_manager=pm,
                       store=f"memory:bench-{next(_conversations)}", journal=journal)

    empty = runtime(build_policy({"name": "empty"}, pm.metric_classes()))
    standard = runtime(STANDARD_POLICY)
    runs: dict[str, Callable[[], tuple[int, float]]] = {
        "raw": lambda: _raw(adapter, args.tokens),
        "aq empty": lambda: _governed(empty, clock, args.tokens)[:2],
        "aq standard": lambda: _governed(standard, clock, args.tokens)[:2],
    }

    # Same work: the empty policy must release exactly the raw loop's tokens.
    _raw(adapter, args.tokens)
    raw_ids = list(adapter.generated)
    _, _, empty_ids, _ = _governed(empty, clock, args.tokens)
    _, _, standard_ids, first = _governed(standard, clock, args.tokens)
    tps: dict[str, list[float]] = {name: [] for name in runs}
    steps: dict[str, list[float]] = {name: [] for name in runs}
    outside: dict[str, list[float]] = {name: [] for name in runs}
    decodes: list[float] = []
    per_decode: dict[str, list[float]] = {name: [] for name in runs}
    tokens: dict[str, int] = {}
    names = list(runs)
    for rep in range(args.reps):
        for name in names[rep % 3:] + names[: rep % 3]:
            n, seconds = runs[name]()
            tokens[name] = n
            tps[name].append(n / seconds)
            steps[name] += clock.steps_us()
            outside[name] += clock.outside_decode_us()
            decodes += clock.decode_us()
            per_decode[name] += clock.decode_us()

    timer = _GateTimer(adapter, pm.metric_classes())
    try:
        _governed(standard, clock, args.tokens)
    finally:
        timer.close()

    med = {name: statistics.median(values) for name, values in tps.items()}
    print(f"\ngoverned vs ungoverned: {adapter.model_name}, vocab {adapter.vocab.size}, "
          f"n_threads {adapter.llama.n_threads}, {args.reps} reps x {args.tokens} tokens max, greedy, "
          "interleaved")
    print(f"tokens released: {', '.join(f'{k} {v}' for k, v in tokens.items())}; "
          f"empty policy tokens == raw tokens: {empty_ids == raw_ids}; "
          f"standard policy interventions: {first.verdicts or 'none'}"
          f"{'' if standard_ids == raw_ids else ' (its tokens differ from raw)'}")
    for name, values in tps.items():
        print(f"{name:12s}: {med[name]:7.1f} tok/s  (reps: {', '.join(f'{x:.1f}' for x in values)})")
    # Each repetition runs the three variants back to back, so a paired ratio compares runs made
    # under the same load; its median and quartiles show how much the machine moved them.
    paired = {name: sorted(a / r for a, r in zip(tps[name], tps["raw"], strict=True))
              for name in ("aq empty", "aq standard")}
    for name, target in (("aq empty", 0.99), ("aq standard", 0.97)):
        ratios = paired[name]
        print(f"ratio {name + ' / raw':17s}: {statistics.median(ratios):.3f} (median of paired reps, "
              f"quartiles {_pct(ratios, 0.25):.3f}-{_pct(ratios, 0.75):.3f}; ratio of median tok/s "
              f"{med[name] / med['raw']:.3f}; best {max(tps[name]) / max(tps['raw']):.3f})  target >= {target}")
    # On a shared machine whole repetitions get slowed down by other processes; the median
    # decode step over every token of every repetition is much less sensitive to that.
    step = {name: statistics.median(values) for name, values in steps.items()}
    for name, target in (("aq empty", 0.99), ("aq standard", 0.97)):
        extra = step[name] - step["raw"]
        print(f"ratio {name + ' / raw':17s} of median step times: {step['raw'] / step[name]:.3f}  "
              f"(raw {step['raw']:.0f} us, {name} {step[name]:.0f} us, {extra:+.0f} us per token)  "
              f"target >= {target}")
    # The loop's own CPU time per token does not depend on what else runs on the machine: the
    # ratio it implies against a quiet llama_decode (its 10th percentile) is the figure to trust
    # when the throughput repetitions above vary a lot.
    quiet_decode = _pct(decodes, 0.1)
    cost = {name: statistics.median(values) for name, values in outside.items()}
    print(f"main thread CPU outside llama_decode, p50 us per token: "
          f"{', '.join(f'{k} {v:.0f}' for k, v in cost.items())}; "
          f"llama_decode wall p10 {quiet_decode:.0f} us, p50 {_pct(decodes, 0.5):.0f} us")
    for name, target in (("aq empty", 0.99), ("aq standard", 0.97)):
        implied = (quiet_decode + cost["raw"]) / (quiet_decode + cost[name])
        print(f"ratio {name + ' / raw':17s} implied by CPU cost (+{cost[name] - cost['raw']:.0f} us per "
              f"token over a {quiet_decode:.0f} us decode): {implied:.3f}  target >= {target}")
    print("llama_decode wall p50 by variant: "
          f"{', '.join(f'{k} {statistics.median(v):.0f} us' for k, v in per_decode.items())}")
    print(f"instrumented standard run, {len(timer.gate)} tokens, us per token:")
    for label, values in (("gate (masks + judge + on_commit)", timer.gate),
                          ("Distribution (scale + log-sum-exp)", timer.dist), ("Sampler.draw", timer.draw)):
        print(f"  {label:36s} p50 {_pct(values, 0.5):7.1f}  p99 {_pct(values, 0.99):7.1f}  "
              f"mean {statistics.fmean(values):7.1f}")
    for rt in (empty, standard):
        rt.state.close()
    adapter.close()


if __name__ == "__main__":
    main()
