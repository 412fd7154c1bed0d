"""Soak: a steady request rate through two ingress replicas on PostgreSQL, on the stub engine.

    flock /tmp/orchestrator-ray.lock nice -n 5 python3 bench/soak.py \
        [--minutes 30 --warmup-minutes 5 --rate 20 --json soak.json --plot soak.png]

`orchestrator serve --deployments deployments/stub.yaml --ingress-min-replicas 2
--ingress-max-replicas 2 --ledger postgresql://...` (a PostgreSQL started from
tests/pg_server.py, durable commits), then open-loop Poisson arrivals at `--rate` req/s of
non-streamed chat requests, alternating with 64-token streams, for `--minutes`. Every
`--sample-s` it records the resident memory (RSS, /proc/<pid>/statm) of every process of the
cluster (Serve proxy, controller, both ingress replicas, the stub's replica, raylet, GCS) and
the errors so far. Pass criteria (issue 30): each process's RSS at the end at most 10 % above
its value at the end of the warm-up; no errors; ledger rows (the `usage` table) equal to the
requests answered. Prints the table, `--json`, `--plot` (RSS over time per process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402
from control_plane import one_request, rss_mb, start_cluster  # noqa: E402

from orchestrator.catalog import load_catalog  # noqa: E402

STUB = load_catalog(ROOT / "deployments" / "stub.yaml").profiles[0]
GROWTH_LIMIT = 0.10


def cluster_processes() -> dict[str, int]:
    """name -> pid of every process of the local Ray cluster (Ray titles its workers)."""
    found: dict[str, int] = {}
    for entry in sorted((e for e in os.listdir("/proc") if e.isdigit()), key=int):
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        name = None
        if cmd.startswith("ray::") and "IDLE" not in cmd:
            # the title carries the method running now (`ray::Actor.method`): the actor only
            name = cmd.split(" ")[0][len("ray::") :].split(".")[0]
        elif "/gcs_server" in cmd.split(" ")[0] or "/raylet" in cmd.split(" ")[0]:
            name = Path(cmd.split(" ")[0]).name
        if name:
            key, n = name, 2
            while key in found:
                key, n = f"{name}#{n}", n + 1
            found[key] = int(entry)
    return found


async def drive(base: str, rate: float, seconds: float, tally: dict, seed: int = 0) -> None:
    """Open-loop arrivals for `seconds`; every other request a 64-token stream."""
    import aiohttp

    rng = random.Random(seed)
    url = f"{base}/v1/chat/completions"
    tasks: set[asyncio.Task] = set()

    async def send(session, stream: bool) -> None:
        ms = await one_request(session, url, STUB.served_model_name, stream)
        tally["errors" if ms is None else "answered"] += 1

    end = time.perf_counter() + seconds
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        k = 0
        while time.perf_counter() < end:
            await asyncio.sleep(rng.expovariate(rate))
            task = asyncio.create_task(send(session, stream=k % 2 == 1))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.gather(*tasks)


async def soak(base: str, args: argparse.Namespace, samples: list[dict], tally: dict) -> None:
    total = args.minutes * 60
    load = asyncio.create_task(drive(base, args.rate, total, tally))
    started = time.perf_counter()
    while not load.done():
        at = time.perf_counter() - started
        samples.append(
            {
                "t_s": at,
                "rss_mb": {k: rss_mb(p) for k, p in cluster_processes().items()},
                **tally,
            }
        )
        print(
            f"{at / 60:5.1f} min: answered {tally['answered']}, errors {tally['errors']}, "
            f"load {servers.load_average()}",
            flush=True,
        )
        await asyncio.wait({load}, timeout=args.sample_s)
    await load
    samples.append(
        {
            "t_s": time.perf_counter() - started,
            "rss_mb": {k: rss_mb(p) for k, p in cluster_processes().items()},
            **tally,
        }
    )


def ledger_rows(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0])


def growth(samples: list[dict], warmup_s: float) -> dict[str, tuple[float, float, float]]:
    """process -> (RSS MB after warm-up, RSS MB at the end, growth)."""
    after = next((s for s in samples if s["t_s"] >= warmup_s), samples[-1])
    last = samples[-1]
    out = {}
    for name, end in last["rss_mb"].items():
        start = after["rss_mb"].get(name)
        if start:
            out[name] = (start, end, end / start - 1)
    return out


def plot(samples: list[dict], warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    names = sorted({n for s in samples for n in s["rss_mb"]})
    for name in names:
        pts = [(s["t_s"] / 60, s["rss_mb"][name]) for s in samples if name in s["rss_mb"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
    ax.axvline(warmup_s / 60, color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(
        "soak: resident memory per process (stub engine, 2 ingress, PostgreSQL)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup-minutes", type=float, default=5)
    parser.add_argument("--rate", type=float, default=20, help="requests per second")
    parser.add_argument("--sample-s", type=float, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    from tests.pg_server import PostgresServer, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        sys.exit("the soak needs PostgreSQL binaries (see tests/pg_server.py)")
    work = servers.bench_workdir("bench-soak-")
    env = servers.serve_env()
    pg = PostgresServer.start(bin_dir, durable=True)
    server = None
    samples: list[dict] = []
    tally = {"answered": 0, "errors": 0}
    try:
        extra = ("--ingress-min-replicas", "2", "--ingress-max-replicas", "2")
        server, base = start_cluster(work, pg.url, env, extra)
        print(
            f"ready; {servers.outrank_servers()}; soaking {args.minutes} min at {args.rate}/s",
            flush=True,
        )
        asyncio.run(soak(base, args, samples, tally))
        time.sleep(2)  # the last rows settle after the last byte of their answers
        rows = ledger_rows(pg.url)
    finally:
        if server is not None:
            servers.stop(server)
        pg.stop()
    warmup_s = args.warmup_minutes * 60
    grown = growth(samples, warmup_s)
    print(f"\nload average at the end {servers.load_average()}")
    print(f"{'process':44s}{'RSS after warm-up':>18s}{'at the end':>12s}{'growth':>9s}")
    for name, (start, end, g) in sorted(grown.items()):
        print(f"{name:44s}{start:16.1f}MB{end:10.1f}MB{100 * g:8.1f}%")
    worst = max(grown.items(), key=lambda kv: kv[1][2])
    ok = worst[1][2] <= GROWTH_LIMIT and tally["errors"] == 0 and rows == tally["answered"]
    print(
        f"answered {tally['answered']}, errors {tally['errors']}, ledger rows {rows}; largest "
        f"growth {worst[0]} {100 * worst[1][2]:.1f} % -> {'PASS' if ok else 'FAIL'} "
        f"(growth <= {100 * GROWTH_LIMIT:.0f} %, no errors, one row per answer)"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": None, "plot": None}, "samples": samples,
                        "ledger_rows": rows, **tally}, indent=1, default=str)
        )  # fmt: skip
    if args.plot:
        plot(samples, warmup_s, args.plot)


if __name__ == "__main__":
    main()
