"""Output tokens/s through orchestrator vs. vLLM's own OpenAI server: same model, same engine
settings, same concurrency, measured one after the other in one run. Prints the ratio.

    python bench/serving_throughput.py [--concurrency 8] [--max-tokens 128] [--rounds 3]

Not a test: it needs ~6 minutes and the whole machine (run it with nothing else busy).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.models import resolve_model  # noqa: E402
from orchestrator.serving.engine_config import engine_kwargs, replica_env  # noqa: E402

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(
    url: str,
    proc: subprocess.Popen,
    ready: Callable[[httpx.Response], bool] = lambda r: True,
    timeout_s: float = 900,
) -> None:
    """Poll `url` until it answers 200 and `ready(response)` holds; fail if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200 and ready(r):
                return
        except httpx.HTTPError:
            pass
        time.sleep(3)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def load(base_url: str, model: str, concurrency: int, max_tokens: int, rounds: int) -> dict:
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=600)

    async def one(i: int) -> int:
        r = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            max_tokens=max_tokens,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        return r.usage.completion_tokens

    await asyncio.gather(*(one(i) for i in range(concurrency)))  # warm-up round
    started = time.perf_counter()
    tokens = 0
    for _ in range(rounds):
        tokens += sum(await asyncio.gather(*(one(i) for i in range(concurrency))))
    elapsed = time.perf_counter() - started
    return {"tokens": tokens, "seconds": elapsed, "tok_s": tokens / elapsed}


def run_orchestrator(profile_name: str, args: argparse.Namespace, log: Path) -> dict:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        # every profile ready, not just the ingress
        wait_ready(
            f"http://127.0.0.1:{port}/healthz", proc, lambda r: all(r.json()["profiles"].values())
        )
        return asyncio.run(
            load(
                f"http://127.0.0.1:{port}/v1",
                profile_name,
                args.concurrency,
                args.max_tokens,
                args.rounds,
            )
        )
    finally:
        stop(proc)


def run_vllm(profile_name: str, args: argparse.Namespace, log: Path) -> dict:
    profile = load_catalog(ROOT / "deployments" / "local.yaml").profile(profile_name)
    model_dir = resolve_model(profile.model)
    kwargs = engine_kwargs(profile, model_dir)
    cli = ["--model", model_dir, "--served-model-name", profile_name]
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cli.append(flag)
        elif isinstance(value, dict):
            import json

            cli += [flag, json.dumps(value)]
        else:
            cli += [flag, str(value)]
    port = free_port()
    env = {**os.environ, **replica_env(profile)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--port", str(port), *cli],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", proc)
        return asyncio.run(
            load(
                f"http://127.0.0.1:{port}/v1",
                profile_name,
                args.concurrency,
                args.max_tokens,
                args.rounds,
            )
        )
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="smollm2-cpu")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; logs in {logs}"
    )
    direct = run_vllm(args.profile, args, logs / "vllm.log")
    print(
        f"vLLM direct     : {direct['tok_s']:7.1f} output tok/s ({direct['tokens']} tokens in {direct['seconds']:.1f} s)"
    )
    ours = run_orchestrator(args.profile, args, logs / "orchestrator.log")
    print(
        f"orchestrator    : {ours['tok_s']:7.1f} output tok/s ({ours['tokens']} tokens in {ours['seconds']:.1f} s)"
    )
    print(
        f"ratio orchestrator / vLLM = {ours['tok_s'] / direct['tok_s']:.3f} "
        f"(concurrency {args.concurrency}, max_tokens {args.max_tokens}, profile {args.profile})"
    )


if __name__ == "__main__":
    main()
