"""Benchmark (real CPU engine): interactive TTFT with a batch job running beside it, and alone.

    flock /tmp/orchestrator-ray.lock python bench/batch_interactive.py [--rounds 4]

Starts `orchestrator serve` on the embedded default (deployments/local.yaml) and runs rounds
A B B A: in an A round only interactive chat streams arrive (open loop, `--rate` per second,
`--interactive` requests, 16 tokens each); in a B round the same arrivals run while a batch job
of `--lines` lines (16 tokens each, window `--window`) runs through the Batch API. Reports the
interactive TTFT p50/p95 per round and the B / A ratio of the p95 (goal: <= 1.10), and for each
batch whether it completed and when, against its window. JSON and a PNG with --out.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402

FAMILY = "smollm2-135m-instruct"
QUESTIONS = [
    "Name a colour of the rainbow.",
    "What is the capital of France?",
    "Give one word that rhymes with cat.",
    "Say hello in Spanish.",
    "What is two plus three?",
]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_stream(client: httpx.AsyncClient, base: str, text: str) -> float | None:
    body = {"model": FAMILY, "stream": True, "max_tokens": 16, "temperature": 0,
            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    start = time.perf_counter()
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            return None
        async for line in r.aiter_lines():
            if line.startswith("data: ") and '"content"' in line:
                return time.perf_counter() - start
    return None


async def interactive(base: str, n: int, rate: float, seed: int) -> list[float]:
    """`n` chat streams arriving at `rate` per second (Poisson); their TTFTs in seconds."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=300) as client:
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one_stream(client, base, QUESTIONS[i % 5])))
            await asyncio.sleep(rng.expovariate(rate))
        done = await asyncio.gather(*tasks)
    return [t for t in done if t is not None]


def batch_file(lines: int) -> bytes:
    out = []
    for n in range(lines):
        body = {"model": FAMILY, "max_tokens": 16, "temperature": 0,
                "messages": [{"role": "user", "content": f"Write a short line about number {n}."}]}  # fmt: skip
        out.append(json.dumps({"custom_id": f"b{n}", "method": "POST",
                               "url": "/v1/chat/completions", "body": body}))  # fmt: skip
    return ("\n".join(out) + "\n").encode()


def start_batch(base: str, lines: int, window: str) -> tuple[object, str]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=2)
    f = client.files.create(file=("bench.jsonl", io.BytesIO(batch_file(lines))), purpose="batch")
    job = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                completion_window=window)  # fmt: skip
    return client, job.id


def wait_batch(client, batch_id: str, limit_s: float) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        job = client.batches.retrieve(batch_id)
        if job.status in ("completed", "failed", "expired", "cancelled"):
            break
        time.sleep(2)
    return {"status": job.status, "completed": job.request_counts.completed,
            "failed": job.request_counts.failed,
            "took_s": (job.completed_at or time.time()) - job.created_at,
            "window_s": (job.expires_at or 0) - job.created_at}  # fmt: skip


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, r in enumerate(result["rounds"]):
        color = "tab:red" if r["kind"] == "B" else "tab:blue"
        ax.scatter([i] * len(r["ttft_s"]), r["ttft_s"], s=8, color=color, alpha=0.5)
        ax.scatter([i], [r["ttft_p95_s"]], marker="_", s=400, color="black")
    ax.set_xticks(range(len(result["rounds"])),
                  [f"{r['kind']}{i}" for i, r in enumerate(result["rounds"])])  # fmt: skip
    ax.set_ylabel("interactive TTFT (s); bar = p95")
    ax.set_title(f"A: interactive alone, B: beside a batch job (p95 B/A {result['p95_ratio']:.2f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4, help="A B B A repeated (multiple of 4)")
    ap.add_argument("--interactive", type=int, default=30)
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--window", default="10m")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = servers.bench_workdir("bench-batch-interactive-")
    server, base = servers.start_serve(work / "serve.log", work / "usage.sqlite3")
    rounds = []
    try:
        servers.wait_ready(f"{base}/healthz", server, servers.all_profiles_ready)
        print(f"ready; {servers.outrank_servers()}; warming up", flush=True)
        asyncio.run(interactive(base, 6, 1.0, 99))
        kinds = ["A", "B", "B", "A"] * max(1, args.rounds // 4)
        for i, kind in enumerate(kinds):
            batch = None
            if kind == "B":
                client, batch_id = start_batch(base, args.lines, args.window)
            # the same arrivals in every round of an A B B A block (a paired comparison)
            ttfts = asyncio.run(interactive(base, args.interactive, args.rate, seed=i // 4))
            if kind == "B":
                batch = wait_batch(client, batch_id, 1800)
            rounds.append({"kind": kind, "ttft_s": ttfts, "ttft_p50_s": statistics.median(ttfts),
                           "ttft_p95_s": pct(ttfts, 0.95), "batch": batch})  # fmt: skip
            print(f"round {i} {kind}: TTFT p50 {rounds[-1]['ttft_p50_s'] * 1000:.0f} ms, "
                  f"p95 {rounds[-1]['ttft_p95_s'] * 1000:.0f} ms; batch {batch}", flush=True)  # fmt: skip
    finally:
        servers.stop(server)
    a = [t for r in rounds if r["kind"] == "A" for t in r["ttft_s"]]
    b = [t for r in rounds if r["kind"] == "B" for t in r["ttft_s"]]
    ratio = pct(b, 0.95) / pct(a, 0.95)
    in_time = all(r["batch"]["status"] == "completed" and r["batch"]["took_s"] <= r["batch"]["window_s"]
                  for r in rounds if r["kind"] == "B")  # fmt: skip
    result = {"rounds": rounds, "p95_ratio": ratio, "batches_in_time": in_time,
              "load_average_after": servers.load_average()}  # fmt: skip
    print(
        f"interactive TTFT p95 beside a batch / alone = {ratio:.2f} (goal <= 1.10); "
        f"every batch completed within its window: {in_time}"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "batch_interactive.json").write_text(json.dumps(result, indent=2))
        plot(result, args.out / "batch_interactive.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
