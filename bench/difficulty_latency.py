"""Benchmark: CPU time that `tier_success` adds to one prediction (docs/difficulty.md).

Pinned to one core; thread CPU time per call (free of a shared machine's scheduling delays)
and wall time, over real prompts of the outcome data (MMLU, GSM8K, MT-Bench) plus long pasted
texts (the model reads at most 2,000 characters of a message), by prompt size band.

Usage: python bench/difficulty_latency.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.predict.difficulty import DifficultyModel  # noqa: E402
from orchestrator.predict.offline.difficulty_data import load_outcomes  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    model = DifficultyModel.default()
    texts = [o.text for o in load_outcomes()]
    rng = np.random.default_rng(0)
    code = "def f(x):\n    return x * 2 + 1  # a line of pasted code\n"
    texts += [code * int(k) for k in rng.integers(20, 400, size=200)]
    picks = rng.choice(len(texts), size=args.calls)
    for i in picks[:200]:
        model.tier_success(texts[i])
    bands = {"<500 chars": [], "500-1999": [], ">=2000 (clipped)": []}
    walls = []
    for i in picks:
        t = texts[i]
        w0, c0 = time.perf_counter(), time.thread_time()
        model.tier_success(t)
        c, w = time.thread_time() - c0, time.perf_counter() - w0
        key = "<500 chars" if len(t) < 500 else "500-1999" if len(t) < 2000 else ">=2000 (clipped)"
        bands[key].append(c * 1000)
        walls.append(w * 1000)
    print("| prompt size | calls | CPU p50 ms | CPU p99 ms |")
    print("|---|---|---|---|")
    for name, v in [*bands.items(), ("all", [x for b in bands.values() for x in b])]:
        if v:
            p = np.percentile(v, [50, 99])
            print(f"| {name} | {len(v)} | {p[0]:.3f} | {p[1]:.3f} |")
    p = np.percentile(walls, [50, 99])
    print(f"\nwall p50 {p[0]:.3f} ms, p99 {p[1]:.3f} ms; load {os.getloadavg()[0]:.1f}; ")
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
