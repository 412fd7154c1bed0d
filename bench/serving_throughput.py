"""Output tokens/s through orchestrator vs. the same vLLM engine served by vLLM's own server.

    flock /tmp/orchestrator-ray.lock python bench/serving_throughput.py [--pairs 4]

Fairness (a router cannot make the engine faster, so any gap must come from the setup):
- one profile only: orchestrator serves a one-profile copy of the catalog (no second engine
  sharing the cores), vLLM's server runs the same profile;
- the same engine: vLLM's server gets exactly `engine_kwargs(profile)` plus what Ray Serve LLM
  adds on a CPU replica (`distributed_executor_backend=mp`, `enable_log_requests=False`), the
  same resolved model files, and the replica's environment (`replica_env`: OMP threads,
  KV cache size, thread binding);
- the same warm-up (one full round each before measuring), the same requests (chat, fixed
  prompts, temperature 0, ignore_eos, max_tokens);
- both servers stay up and are measured alternately (ABBA order per pair) so machine load
  drifts hit both sides alike; the ratio is reported per pair with its spread.

Not a test: needs ~10 minutes and the machine lock; prints the machine and its load average.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from servers import (  # noqa: E402
    SERVER_PROCESS,
    all_profiles_ready,
    bench_workdir,
    chosen_profile,
    free_port,
    load_average,
    outrank_servers,
    profile_parser,
    start_serve,
    stop,
    wait_ready,
    write_json,
)

from orchestrator.engines.config import engine_kwargs, replica_env  # noqa: E402
from orchestrator.models import resolve_model  # noqa: E402

PROMPTS = [
    "Explain how a bicycle works.",
    "Write a short story about a robot learning to paint.",
    "Describe the water cycle for a ten-year-old.",
    "List some tips for staying focused while studying.",
    "What are the benefits of regular exercise?",
    "Summarize the plot of a classic adventure novel.",
    "How do plants make food from sunlight?",
    "Give advice to someone starting their first job.",
]

# What ray.serve.llm's VLLMEngineConfig adds to engine_kwargs on a CPU replica (ray 2.60,
# ray/llm/_internal/serve/engines/vllm/vllm_models.py: get_initialization_kwargs).
SERVE_LLM_CPU_DEFAULTS = {"distributed_executor_backend": "mp", "enable_log_requests": False}


async def load(
    base_url: str, model: str, concurrency: int, max_tokens: int, rounds: int
) -> dict[str, float]:
    """`rounds` rounds of `concurrency` chat requests at once; output tokens per second."""
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=900)

    async def one(i: int) -> int:
        r = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            max_tokens=max_tokens,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        return r.usage.completion_tokens

    started = time.perf_counter()
    tokens = 0
    for _ in range(rounds):
        tokens += sum(await asyncio.gather(*(one(i) for i in range(concurrency))))
    elapsed = time.perf_counter() - started
    await client.close()
    return {"tokens": tokens, "seconds": elapsed, "tok_s": tokens / elapsed}


def vllm_cli(profile_name: str, model_dir: str, kwargs: dict) -> list[str]:
    """vLLM server flags for `kwargs` (AsyncEngineArgs field names)."""
    cli = ["--model", model_dir, "--served-model-name", profile_name]
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cli.append(flag)
        elif value is False:
            cli.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, dict):
            cli += [flag, json.dumps(value)]
        else:
            cli += [flag, str(value)]
    return cli


def start_vllm(profile, log: Path) -> tuple[subprocess.Popen, str]:
    model_dir = resolve_model(profile.model)
    kwargs = {**engine_kwargs(profile, model_dir), **SERVE_LLM_CPU_DEFAULTS}
    if profile.accelerator.is_gpu:
        kwargs.pop("distributed_executor_backend")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--port",
            str(port),
            *vllm_cli(profile.name, model_dir, kwargs),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **replica_env(profile)},
        **SERVER_PROCESS,
    )
    return proc, f"http://127.0.0.1:{port}"


def write_catalog(path: Path, profile) -> Path:
    """A one-profile catalog file at `path`."""
    catalog = {
        "apiVersion": "orchestrator/v1",
        "kind": "Catalog",
        "profiles": [profile.model_dump(mode="json", exclude_none=True)],
    }
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


def start_orchestrator(profile, workdir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    path = write_catalog(workdir / "one-profile.yaml", profile)
    return start_serve(log, workdir / "usage.sqlite3", "--deployments", str(path))


def plot(pairs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = range(1, len(pairs) + 1)
    ax.plot(xs, [p["vllm"] for p in pairs], "o-", label="vLLM server (same engine)")
    ax.plot(xs, [p["orchestrator"] for p in pairs], "s-", label="orchestrator")
    ax.set_xlabel("pair (alternating runs)")
    ax.set_ylabel("output tok/s")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = profile_parser(__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per measurement")
    parser.add_argument("--pairs", type=int, default=4, help="alternating measurement pairs")
    args = parser.parse_args()
    profile = chosen_profile(args)
    work = bench_workdir("bench-serving-")
    direct, direct_url = start_vllm(profile, work / "vllm.log")
    ours, ours_url = start_orchestrator(profile, work, work / "orchestrator.log")
    try:
        wait_ready(f"{direct_url}/v1/models", direct)
        wait_ready(f"{ours_url}/healthz", ours, all_profiles_ready)
        print(outrank_servers(), flush=True)
        sides = {"vllm": f"{direct_url}/v1", "orchestrator": f"{ours_url}/v1"}

        def measure(side: str, rounds: int) -> dict[str, float]:
            return asyncio.run(
                load(sides[side], profile.name, args.concurrency, args.max_tokens, rounds)
            )

        for side in sides:  # warm-up: one full round each
            measure(side, 1)
        pairs = []
        for i in range(args.pairs):
            order = ("vllm", "orchestrator") if i % 2 == 0 else ("orchestrator", "vllm")
            pair = {}
            for side in order:
                r = measure(side, args.rounds)
                pair[side] = r["tok_s"]
                print(
                    f"pair {i + 1} {side:12s}: {r['tok_s']:7.1f} output tok/s "
                    f"({int(r['tokens'])} tokens in {r['seconds']:.1f} s)",
                    flush=True,
                )
            pair["ratio"] = pair["orchestrator"] / pair["vllm"]
            pairs.append(pair)
    finally:
        stop(ours)
        stop(direct)
    ratios = [p["ratio"] for p in pairs]
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_end": load_average(),
        "profile": profile.name,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "load_generator": f"nice {os.nice(0)}",
        "pairs": pairs,
        "vllm_median_tok_s": statistics.median(p["vllm"] for p in pairs),
        "orchestrator_median_tok_s": statistics.median(p["orchestrator"] for p in pairs),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }
    print(
        f"ratio orchestrator / vLLM: median {summary['ratio_median']:.3f} "
        f"(min {summary['ratio_min']:.3f}, max {summary['ratio_max']:.3f}, {len(pairs)} pairs); "
        f"medians {summary['orchestrator_median_tok_s']:.1f} vs "
        f"{summary['vllm_median_tok_s']:.1f} tok/s; load average {summary['load_average_end']}"
    )
    write_json(args.json, summary)
    if args.plot:
        plot(pairs, args.plot, f"{profile.name}, concurrency {args.concurrency}")


if __name__ == "__main__":
    main()
