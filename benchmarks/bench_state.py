"""State store latency: load, and load + compare-and-set commit, for LMDB and Redis.

    python benchmarks/bench_state.py [--quick]

Prints p50 / p99 per operation, one thread, against:
- LMDB with ``sync=true`` (durable commits) and ``sync=false``, in a temporary directory;
- Redis on loopback, on a ``redis-server`` this script starts (no persistence, AOF
  ``appendfsync everysec`` and AOF ``appendfsync always``).

Targets (docs/stores.md): LMDB load p50 <= 50 us; Redis load + CAS commit p50 <= 1 ms.
Needs aq-state-lmdb and aq-state-redis installed (or their directories on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
for _extra in (_ROOT, _ROOT / "plugins" / "aq-state-lmdb", _ROOT / "plugins" / "aq-state-redis"):
    if str(_extra) not in sys.path:
        sys.path.append(str(_extra))

from aq_state_lmdb.plugin import open_state_backend as open_lmdb  # noqa: E402
from aq_state_redis.plugin import open_state_backend as open_redis  # noqa: E402

TARGETS = {("lmdb", "load"): 50.0, ("redis", "load+cas"): 1000.0}


def sample_doc(i: int) -> dict[str, Any]:
    """A conversation state of realistic size (~1 KB of JSON)."""
    return {
        "version": 0,
        "entropy_spent": 12.5 + i,
        "commitments": {
            f"slot{j}": {
                "slot": f"slot{j}",
                "value": f"value {j}",
                "invocation": f"{i:032x}",
                "scope": "conversation",
            }
            for j in range(4)
        },
        "conflicts": [],
        "constraints": ["no refunds above 100 EUR", "never share account numbers"],
        "context": {"locale": "en-GB", "tier": "gold", "notes": "x" * 200},
        "applied_updates": [f"{i:032x}-{j}" for j in range(5)],
    }


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99, statistics.fmean(ordered) / 1000


def measure(fn: Callable[[int], Any], n: int, warmup: int) -> list[int]:
    for i in range(warmup):
        fn(i)
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        fn(i)
        out.append(clock() - start)
    return out


def bench_backend(backend: Any, keys: int, loads: int, commits: int) -> dict[str, list[int]]:
    names = [f"conversation/bench:agent:c{i}" for i in range(keys)]
    for i, key in enumerate(names):
        held = backend.load(key)
        backend.compare_and_set(key, held.version if held else 0, sample_doc(i))
    rng = random.Random(7)
    order = [rng.randrange(keys) for _ in range(max(loads, commits) + 200)]

    def load(i: int) -> None:
        backend.load(names[order[i]])

    def load_cas(i: int) -> None:
        key = names[order[i]]
        held = backend.load(key)
        doc = held.doc
        doc["entropy_spent"] += 0.5
        if not backend.compare_and_set(key, held.version, doc):
            raise RuntimeError(f"unexpected conflict on {key} with a single writer")

    return {
        "load": measure(load, loads, warmup=200),
        "load+cas": measure(load_cas, commits, warmup=min(50, commits)),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(directory: Path, persistence: list[str]) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            *persistence,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0?connect_timeout=0.5&timeout=2"
    try:
        probe = open_redis(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                probe.load("agent/bench:probe")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        probe.close()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    loads, commits, durable_commits = int(20000 * scale), int(5000 * scale), int(300 * scale)
    rows: list[tuple[str, str, str, list[int]]] = []
    with tempfile.TemporaryDirectory(prefix="aq-bench-") as tmp:
        for label, sync, n_commits in (
            ("sync=true", "true", durable_commits),
            ("sync=false", "false", commits),
        ):
            backend = open_lmdb(f"lmdb://{tmp}/lmdb-{sync}?sync={sync}")
            for op, samples in bench_backend(backend, 1000, loads, n_commits).items():
                rows.append(("lmdb", label, op, samples))
            backend.close()
        if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
            print("redis-server not found: Redis skipped", file=sys.stderr)
        else:
            settings = {
                "no persistence": ["--appendonly", "no"],
                "AOF everysec": ["--appendonly", "yes", "--appendfsync", "everysec"],
                "AOF always": ["--appendonly", "yes", "--appendfsync", "always"],
            }
            for label, persistence in settings.items():
                directory = Path(tmp) / label.replace(" ", "-")
                directory.mkdir()
                n_commits = durable_commits if label == "AOF always" else commits
                with redis_server(directory, persistence) as url:
                    backend = open_redis(url)
                    for op, samples in bench_backend(backend, 1000, loads // 4, n_commits).items():
                        rows.append(("redis", label, op, samples))
                    backend.close()
    header = ("store", "setting", "operation", "n", "p50 us", "p99 us", "mean us")
    print("{:<6} {:<15} {:<9} {:>6} {:>9} {:>9} {:>9}  target".format(*header))
    for store, label, op, samples in rows:
        p50, p99, mean = percentiles(samples)
        target = TARGETS.get((store, op))
        verdict = "" if target is None else f"p50 <= {target:g} us: {'met' if p50 <= target else 'MISSED'}"
        cells = f"{store:<6} {label:<15} {op:<9} {len(samples):>6}"
        print(f"{cells} {p50:>9.1f} {p99:>9.1f} {mean:>9.1f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
