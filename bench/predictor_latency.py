"""Latency of one prediction (parse + tokenize + features + models), on one core.

The tokenizer columns time the exact counting path the predictor uses (tiktoken mirroring
the SmolLM2 tokenizer) and, for comparison, the `tokenizers` library on the same text.
Prompts are real (arena-hard v2, alpaca_eval) cut to token-length bands up to 2k tokens, or
synthetic when the shared data is absent. The token cache is cleared before every call, so
each prediction pays the full tokenization. Prints p50 / p99 / max per band and overall,
plus the machine. Usage: python bench/predictor_latency.py [--calls 2000] [--no-pin] [--clock wall|cpu]
(`--clock cpu` times the thread's CPU time: what one prediction costs, free of the
scheduling delays of a shared machine)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import numpy as np


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{cpu}; {os.cpu_count()} cores; load avg {load[0]:.2f}; python {platform.python_version()}"
    )


def _prompts(tokenizer, rng: random.Random) -> list[str]:
    from orchestrator.paths import SHARED_DATA

    texts: list[str] = []
    arena = SHARED_DATA / "arena-hard-v2" / "question.jsonl"
    alpaca = SHARED_DATA / "alpaca-eval" / "gpt-4o-2024-05-13.json"
    if arena.is_file():
        with arena.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["prompt"] for line in fh]
    if alpaca.is_file():
        texts += [row["instruction"] for row in json.loads(alpaca.read_text(encoding="utf-8"))]
    if not texts:
        words = [
            "the",
            "model",
            "answers",
            "questions",
            "about",
            "code",
            "math",
            "history",
            "and",
            "science",
        ]
        texts = [
            " ".join(rng.choice(words) for _ in range(rng.randint(5, 1500))) for _ in range(500)
        ]
    out = []
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        if len(ids) > 2000:  # cut to 2k tokens at a token boundary
            text = tokenizer.decode(ids[:2000])
        out.append(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU core")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this thread's CPU time (robust on a loaded machine)",
    )
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from orchestrator.predict.features import clear_token_cache
    from orchestrator.predict.predictor import Predictor
    from orchestrator.predict.tokenizer import fast_encoder, load_default_tokenizer

    tokenizer = load_default_tokenizer()
    predictor = Predictor(store=None)
    rng = random.Random(0)
    prompts = _prompts(tokenizer, rng)
    bands = [(0, 128), (128, 512), (512, 1024), (1024, 2001)]
    sized = [(len(tokenizer.encode(p, add_special_tokens=False).ids), p) for p in prompts]
    for _ in range(50):  # warm-up
        predictor.predict({"messages": [{"role": "user", "content": rng.choice(prompts)}]})

    results: dict[tuple[int, int], list[float]] = {b: [] for b in bands}
    tokenize_only: dict[tuple[int, int], list[float]] = {b: [] for b in bands}
    tokenize_hf: dict[tuple[int, int], list[float]] = {b: [] for b in bands}
    encode = fast_encoder(tokenizer)
    everything: list[float] = []
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    per_band = max(1, args.calls // len(bands))
    for band in bands:
        pool = [p for n, p in sized if band[0] <= n < band[1]]
        if not pool:
            continue
        for _ in range(per_band):
            body = {"messages": [{"role": "user", "content": rng.choice(pool)}]}
            clear_token_cache()
            start = clock()
            predictor.predict(body)
            elapsed = (clock() - start) * 1e3
            results[band].append(elapsed)
            everything.append(elapsed)
            text = body["messages"][0]["content"]
            start = clock()
            encode(text)
            tokenize_only[band].append((clock() - start) * 1e3)
            start = clock()
            tokenizer.encode_batch_fast([text], add_special_tokens=False)
            tokenize_hf[band].append((clock() - start) * 1e3)

    print(f"machine: {_machine()}")
    print(
        f"pinned to one core: {not args.no_pin}; token cache cleared before each call; "
        f"clock: {args.clock}"
    )
    print(
        f"{'prompt tokens':<16}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'tokenizer p50':>15}{'tokenizer p99':>15}{'tokenizers-lib p99':>20}"
    )
    for band, values in results.items():
        if values:
            v = np.asarray(values)
            t = np.asarray(tokenize_only[band])
            h = np.asarray(tokenize_hf[band])
            print(
                f"{f'{band[0]}-{band[1] - 1}':<16}{len(v):>7}{np.percentile(v, 50):>9.2f}"
                f"{np.percentile(v, 99):>9.2f}{v.max():>9.2f}"
                f"{np.percentile(t, 50):>15.2f}{np.percentile(t, 99):>15.2f}"
                f"{np.percentile(h, 99):>20.2f}"
            )
    v = np.asarray(everything)
    print(
        f"{'all (stratified)':<16}{len(v):>7}{np.percentile(v, 50):>9.2f}"
        f"{np.percentile(v, 99):>9.2f}{v.max():>9.2f}"
    )


if __name__ == "__main__":
    main()
