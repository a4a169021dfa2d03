"""Runtime start without the model: import, plugin discovery and policy load, in fresh
interpreters (the way a serverless worker starts). Prints p50/p90 over N runs and the share of
the largest imports. Target: ≤ 200 ms.

    python benchmarks/bench_startup.py [--runs 15] [--policy examples/policies/support-agent.toml]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

CODE = """
import time
t = time.perf_counter()
from aqcore import Runtime
runtime = Runtime(adapter="test", policy={policy!r}, store="memory:", journal={journal!r})
print((time.perf_counter() - t) * 1000)
"""

BARE = "import time; t = time.perf_counter(); print((time.perf_counter() - t) * 1000)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--policy", default=str(Path(__file__).parents[1] / "examples/policies/support-agent.toml"))
    args = parser.parse_args()
    code = CODE.format(policy=args.policy, journal="/tmp/aq-bench-startup")
    times = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        times.append(float(out.strip().splitlines()[-1]))
    times.sort()
    p50 = statistics.median(times)
    p90 = times[int(0.9 * (len(times) - 1))]
    print(f"runtime start (import + discovery + policy load, no model): p50 {p50:.0f} ms, p90 {p90:.0f} ms "
          f"over {len(times)} fresh interpreters (target <= 200 ms)")
    importtime = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    rows = []
    for line in importtime.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                rows.append((int(cumulative), name))
    for cumulative, name in sorted(rows, reverse=True)[:6]:
        print(f"  import {name:<28} {cumulative / 1000:6.1f} ms")


if __name__ == "__main__":
    main()
