"""Storage throughput: settlement cost per request and ledger rows/s, SQLite beside PostgreSQL.

Side by side in one run, on this machine, for each backend with its durable defaults (SQLite
WAL + synchronous=FULL, the ledger's default; PostgreSQL with fsync and synchronous_commit on;
and SQLite with synchronous=NORMAL beside them, to show what the fsync per commit costs):
  settle 1x:   one request's budget work, sequential: `reserve` (tenant lock, spend per
               window, live holds, conditional insert) + `settle` (row, window totals,
               release), per request: p50 and p95 in ms;
  settle 4x:   the same from 4 threads, each with its own connection (4 "replicas"), one
               tenant (the worst case: one budget, so one lock), requests/s;
  rows 1x:     ledger rows appended one per transaction (`append`), rows/s;
  rows batch:  rows written 100 per transaction (`settle_many`), rows/s.
PostgreSQL is a throwaway local server (initdb/pg_ctl on loopback, as the tests start it) unless
`--postgres URL` names one. Backends alternate within each step (A B C, then C B A) and
figures are medians over the rounds. Results go to stdout, `--json` and a PNG.

    nice -n 10 python3 bench/storage_throughput.py [--n 300] [--rounds 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402

from orchestrator.ledger import UsageLedger, UsageRecord  # noqa: E402
from tests.pg_server import PostgresServer, find_binaries  # noqa: E402

LIMITS = {"hour": 1e9, "day": 1e9, "month": 1e9}  # never binding: measure the work, not refusals
THREADS = 4


def record(rid: str, now: datetime, tenant: str = "acme") -> UsageRecord:
    return UsageRecord(
        request_id=rid,
        tenant=tenant,
        profile="p",
        prompt_tokens=500,
        output_tokens=200,
        cost_usd=0.0004,
        started_at=now - timedelta(seconds=1),
        finished_at=now,
    )


def settle_once(ledger: UsageLedger, rid: str, now: datetime) -> None:
    ledger.reserve("acme", rid, 0.001, LIMITS, now=now)
    ledger.settle(record(rid, now))


def time_sequential(ledger: UsageLedger, n: int, prefix: str, now: datetime) -> list[float]:
    """Seconds per reserve + settle, one after another."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        settle_once(ledger, f"{prefix}-{i}", now)
        times.append(time.perf_counter() - start)
    return times


def time_threads(target: str, options: dict, n: int, prefix: str, now: datetime) -> float:
    """Requests/s with THREADS connections reserving and settling at once."""
    ledgers = [UsageLedger(target, timeout_s=60, **options) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(n // THREADS):
            settle_once(ledgers[k], f"{prefix}-{k}-{i}", now)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for led in ledgers:
        led.close()
    return (n // THREADS) * THREADS / elapsed


def rows_per_s(write: Callable[..., int], *args: object) -> float:
    start = time.perf_counter()
    rows = write(*args)
    return rows / (time.perf_counter() - start)


def one_per_transaction(ledger: UsageLedger, tag: str, n: int, now: datetime) -> int:
    return sum(ledger.settle(record(f"{tag}-{i}", now)) for i in range(n))


def measure(
    targets: dict[str, tuple[str, dict]], n: int, rounds: int, step: Callable[[str], None]
) -> dict:
    """Every figure per backend, median over `rounds`; within each step the backends alternate
    (A B C, then C B A) so a change in the machine's load hits all alike."""
    now = datetime.now(UTC)
    ledgers = {name: UsageLedger(target, **opts) for name, (target, opts) in targets.items()}
    for ledger in ledgers.values():
        # a tenant with 2,000 rows of history: spend reads and settles touch real totals
        ledger.settle_many(record(f"hist-{i}", now - timedelta(seconds=i)) for i in range(2000))
    samples: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in targets}

    def batched(ledger: UsageLedger, tag: str) -> int:
        total = 0
        for b in range(n // 10):
            total += ledger.settle_many(
                record(f"{tag}-{b}-{i}", now, tenant=f"t{i % 8}") for i in range(100)
            )
        return total

    for r in range(rounds):
        order = list(targets) if r % 2 == 0 else list(reversed(targets))
        for name in order:
            step(f"round {r + 1}/{rounds} {name}: settle 1x, {n} requests")
            seq = time_sequential(ledgers[name], n, f"seq{r}", now)
            samples[name]["settle_ms_p50"].append(statistics.median(seq) * 1000)
            samples[name]["settle_ms_p95"].append(sorted(seq)[int(0.95 * (len(seq) - 1))] * 1000)
        for name in order:
            step(f"round {r + 1}/{rounds} {name}: settle {THREADS}x, {n} requests")
            samples[name][f"settle_rps_{THREADS}x"].append(
                time_threads(*targets[name], n, f"par{r}", now)
            )
        for name in order:
            step(f"round {r + 1}/{rounds} {name}: rows 1x, {n} rows")
            ledger = ledgers[name]
            samples[name]["rows_per_s_1x"].append(
                rows_per_s(one_per_transaction, ledger, f"one{r}", n, now)
            )
        for name in order:
            step(f"round {r + 1}/{rounds} {name}: rows batch, {n * 10} rows, 100 per transaction")
            ledger = ledgers[name]
            samples[name]["rows_per_s_batch"].append(rows_per_s(batched, ledger, f"batch{r}"))
    for ledger in ledgers.values():
        ledger.close()
    results = {}
    for name, figures in samples.items():
        results[name] = {key: statistics.median(values) for key, values in figures.items()}
        results[name]["settle_rps_1x"] = 1000 / results[name]["settle_ms_p50"]
    return results


def plot(results: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["settle_rps_1x", f"settle_rps_{THREADS}x", "rows_per_s_1x", "rows_per_s_batch"]
    labels = [
        "settle 1x\n(req/s)",
        f"settle {THREADS}x\n(req/s)",
        "rows 1x\n(rows/s)",
        "rows batch\n(rows/s)",
    ]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(results)
    for j, (name, res) in enumerate(results.items()):
        xs = [i + (j - (len(results) - 1) / 2) * width for i in range(len(keys))]
        ax.bar(xs, [res[k] for k in keys], width, label=name)
    ax.set_xticks(range(len(keys)), labels)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="requests per step")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (median)")
    parser.add_argument(
        "--postgres", default=None, help="an existing PostgreSQL URL (else a local one)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    steps = 1 + args.rounds * 4 * 3  # 3 configurations, 4 steps each per round
    done = [0]

    def step(text: str) -> None:
        done[0] += 1
        print(f"[{done[0]}/{steps}] {text}", flush=True)

    print(f"machine: {servers.machine()}", flush=True)
    server = None
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as work:
        targets: dict[str, tuple[str, dict]] = {
            "SQLite": (str(Path(work) / "ledger.sqlite3"), {}),
            # what the fsync per commit costs: a committed row then survives a process crash,
            # not an OS crash
            "SQLite NORMAL": (str(Path(work) / "normal.sqlite3"), {"synchronous": "NORMAL"}),
        }
        url = args.postgres
        if url is None:
            bin_dir = find_binaries()
            if bin_dir is None:
                sys.exit(
                    "no PostgreSQL binaries (initdb, pg_ctl): install postgresql or pass --postgres"
                )
            step("starting a local PostgreSQL (durable defaults: fsync on)")
            server = PostgresServer.start(bin_dir, durable=True)
            url = server.fresh_url()
        else:
            step(f"using {url.split('@')[-1]}")
        targets["PostgreSQL"] = (url, {})
        try:
            results = measure(targets, args.n, args.rounds, step)
        finally:
            if server is not None:
                server.stop()
    print()
    print(f"medians of {args.rounds} alternating rounds; settle_rps_1x = 1 / p50")
    print(f"{'':22}" + "".join(f"{name:>14}" for name in results))
    for key in next(iter(results.values())):
        print(f"{key:22}" + "".join(f"{res[key]:14.2f}" for res in results.values()))
    ratio = results["SQLite"]["settle_ms_p50"] / results["PostgreSQL"]["settle_ms_p50"]
    print(f"settlement p50, SQLite / PostgreSQL: {ratio:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "storage_throughput.png"
    plot(results, png, f"storage throughput ({servers.machine()})")
    print(f"plot: {png}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": servers.machine(),
                    "n": args.n,
                    "rounds": args.rounds,
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
