"""What the ingress queue costs per request while requests wait: pushing one, pricing a new
request's place (`WaitQueue.ahead_of`, the position a queued request is recorded with), and a
steady step (one look-up, one arrival, one release), at several queue lengths.

    python bench/queue_place.py [--tenants 10] [--lengths 100,1000,5000] [--json F]

Pure Python, one process; prints ms per operation and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from orchestrator.scheduling import SchedulingSettings, TenantShare, Waiting, WaitQueue


def measure(length: int, tenants: int, reps: int, seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    settings = SchedulingSettings(tenants={}, default=TenantShare(max_queued=10**6))
    now = [1000.0]
    queue = WaitQueue(settings, lambda: now[0])

    def waiting(rid: str, i: int) -> Waiting:
        return Waiting(rid, f"t{i % tenants}", predicted_tokens=rng.randint(10, 2000))

    start = time.perf_counter()
    for i in range(length):
        queue.push(waiting(f"r{i}", i))
    push_ms = (time.perf_counter() - start) / length * 1000
    start = time.perf_counter()
    for i in range(reps):
        queue.ahead_of(f"t{i % tenants}", "standard", 300.0)
    place_ms = (time.perf_counter() - start) / reps * 1000
    start = time.perf_counter()
    for i in range(reps):
        queue.ahead_of(f"t{i % tenants}", "standard", 300.0)
        queue.push(waiting(f"x{i}", i))
        queue.pop()
    step_ms = (time.perf_counter() - start) / reps * 1000
    return {"waiting": length, "push_ms": push_ms, "ahead_of_ms": place_ms, "step_ms": step_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--lengths", default="100,1000,5000")
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    for length in (int(x) for x in args.lengths.split(",")):
        row = measure(length, args.tenants, args.reps)
        rows.append(row)
        print(
            f"waiting {length:>6}: push {row['push_ms']:.3f} ms, ahead_of {row['ahead_of_ms']:.3f}"
            f" ms, look-up + arrival + release {row['step_ms']:.3f} ms",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tenants": args.tenants, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
