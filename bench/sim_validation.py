"""Validate the simulator's replica model against the real engine (issue 14).

    flock /tmp/orchestrator-ray.lock python bench/sim_validation.py [--requests 40] [--rate 0.6]

1. Start the profile's real vLLM engine in-process (the engine directly: its catalog engine
   arguments and replica environment, no Ray/HTTP; `orchestrator.profiling.engine`).
2. Measure its figures with a short sweep (`orchestrator profile measure`'s fit), so the
   simulated replica is calibrated on the same machine state as the load that follows; the
   same sweep runs again after the load, so drift in a shared machine's speed shows.
3. Send a small recorded load: Poisson arrivals, real prompts (alpaca-eval instructions in
   ../shared/data, else the repo docs), output lengths drawn per request and enforced with
   ignore_eos; record each request's arrival, prompt/output tokens, TTFT, TPOT, end-to-end.
4. Replay the same requests (same arrivals, prompts, sizes) through the simulator
   (`orchestrator.simulate.replay`, policy "ours" on a one-profile, one-replica catalog) twice:
   with the figures measured before the load, after it, and with the catalog's figures.
5. Report the error in mean TTFT, mean TPOT and throughput (output tokens / makespan).

Writes the recorded load as JSONL (`--record`), the summary as JSON (`--json`), and a plot of
real vs simulated per-request TTFT and TPOT (`--plot`). Not a test: ~10 min under the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402

from orchestrator.catalog.schema import Catalog, Performance, Profile  # noqa: E402
from orchestrator.paths import SHARED_DATA  # noqa: E402
from orchestrator.policy import default_policy  # noqa: E402
from orchestrator.profiling import fit_performance, sweep_plan  # noqa: E402
from orchestrator.profiling.engine import ProfileEngine, profile_environment  # noqa: E402
from orchestrator.profiling.measure import describe  # noqa: E402
from orchestrator.simulate import SimRequest, replay  # noqa: E402
from orchestrator.simulate.metrics import tpot_s  # noqa: E402


def real_prompts(limit: int = 500) -> list[str]:
    path = SHARED_DATA / "alpaca-eval" / "Mistral-7B-Instruct-v0.3.json"
    if path.is_file():
        rows = json.loads(path.read_text())
        return [r["instruction"] for r in rows[:limit] if r.get("instruction")]
    docs = (ROOT / "README.md").read_text().split("\n\n")
    return [p for p in docs if len(p) > 80][:limit]


def make_load(tokenizer, n: int, rate: float, out_range: tuple[int, int], seed: int) -> list[dict]:
    rng = random.Random(seed)
    texts = real_prompts()
    t, load = 0.0, []
    for i in range(n):
        t += rng.expovariate(rate) if i else 0.0
        text = texts[rng.randrange(len(texts))]
        ids = tokenizer.encode(text, add_special_tokens=False)[:512]
        load.append(
            {
                "arrival_s": round(t, 4),
                "prompt": text,
                "ids": ids,
                "prompt_tokens": len(ids),
                "output_tokens": rng.randint(*out_range),
            }
        )
    return load


async def run_load(engine: ProfileEngine, load: list[dict]) -> list[dict]:
    """Send each request at its arrival time; per-request timings relative to its arrival."""
    t0 = time.perf_counter()

    async def one(req: dict) -> dict:
        await asyncio.sleep(max(0.0, req["arrival_s"] - (time.perf_counter() - t0)))
        sent = time.perf_counter()
        timing = await engine.one(req["ids"], req["output_tokens"], sent)
        return {
            "arrival_s": sent - t0,
            "prompt": req["prompt"],
            "prompt_tokens": req["prompt_tokens"],
            "output_tokens": timing.output_tokens,
            "ttft_s": timing.first_token_s,
            "e2e_s": timing.finished_s,
            "tpot_s": timing.tpot_s or 0.0,
        }

    return list(await asyncio.gather(*(one(r) for r in load)))


def one_replica_catalog(profile: Profile, performance=None) -> Catalog:
    update = {"replicas": profile.replicas.model_copy(update={"min": 1, "max": 1, "initial": 1})}
    if performance is not None:
        update["performance"] = performance
    return Catalog(profiles=[profile.model_copy(update=update)])


def simulate(catalog: Catalog, recorded: list[dict]) -> dict[str, np.ndarray]:
    requests = [
        SimRequest(
            i,
            r["arrival_s"],
            {"messages": [{"role": "user", "content": r["prompt"]}]},
            r["prompt_tokens"],
            r["output_tokens"],
        )
        for i, r in enumerate(recorded)
    ]
    first = min(r.arrival_s for r in requests)
    for r in requests:
        r.arrival_s -= first
    result = replay(catalog, default_policy(catalog), requests)
    out = result.policies["ours"].outcome
    return {"ttft_s": out.ttft_s, "e2e_s": out.e2e_s, "tpot_s": tpot_s(out), "tokens": out.tokens}


def summary(arrivals: np.ndarray, ttft_s, e2e_s, tpot_s, tokens) -> dict[str, float]:
    finish = arrivals + e2e_s
    return {
        "ttft_mean_s": float(np.mean(ttft_s)),
        "ttft_p50_s": float(np.median(ttft_s)),
        "tpot_mean_s": float(np.mean(tpot_s[tokens > 1])),
        "e2e_mean_s": float(np.mean(e2e_s)),
        "throughput_tok_s": float(np.sum(tokens) / (np.max(finish) - np.min(arrivals))),
    }


def errors(sim: dict[str, float], real: dict[str, float]) -> dict[str, float]:
    return {k: sim[k] / real[k] - 1.0 for k in real if real[k] > 0}


def plot(real, sims: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, key, label in ((axes[0], "ttft_s", "TTFT (s)"), (axes[1], "tpot_s", "TPOT (s)")):
        hi = max(float(np.max(real[key])), *(float(np.max(s[key])) for s in sims.values()))
        for name, sim in sims.items():
            ax.scatter(real[key], sim[key], s=12, label=f"simulated ({name} figures)")
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel(f"real {label}")
        ax.set_ylabel(f"simulated {label}")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = servers.profile_parser(__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.6, help="arrivals per second (Poisson)")
    parser.add_argument("--out-min", type=int, default=16)
    parser.add_argument("--out-max", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick-sweep", action="store_true", help="tiny calibration sweep")
    parser.add_argument("--record", type=Path, default=None, help="write the load (JSONL)")
    parser.add_argument(
        "--from-record", type=Path, default=None, help="analyse a recorded load (no engine)"
    )
    args = parser.parse_args()
    profile = servers.chosen_profile(args)
    if args.from_record:
        lines = args.from_record.read_text().splitlines()
        head, recorded = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
        measured = Performance.model_validate(head["measured_performance"])
        after = head.get("measured_after")
        measured_after = Performance.model_validate(after) if after else None
        machine = head.get("machine", "")
    else:
        measured, measured_after, recorded, machine = record(profile, args)
    analyse(profile, measured, measured_after, recorded, machine, args)


def record(
    profile: Profile, args: argparse.Namespace
) -> tuple[Performance, Performance, list[dict], str]:
    """Calibrate and send the load on the real engine; write the record before any analysis."""
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(f"machine: {machine}; engine in-process", flush=True)
    with profile_environment(profile):
        engine = ProfileEngine.start(profile)
        try:

            async def session():
                await engine.warm_up()
                steps = sweep_plan(profile, quick=args.quick_sweep)
                results = []
                for i, step in enumerate(steps, 1):
                    res = await engine.run_step(step)
                    results.append(res)
                    print(f"[sweep {i}/{len(steps)}] {step.label()}: {describe(res)}", flush=True)
                tokenizer = engine.tokenizer
                load = make_load(
                    tokenizer, args.requests, args.rate, (args.out_min, args.out_max), args.seed
                )
                print(f"[load] {len(load)} requests at {args.rate}/s ...", flush=True)
                recorded = await run_load(engine, load)
                after = []  # the same sweep again: how far the machine drifted meanwhile
                for i, step in enumerate(steps, 1):
                    res = await engine.run_step(step)
                    after.append(res)
                    print(f"[after {i}/{len(steps)}] {step.label()}: {describe(res)}", flush=True)
                return results, recorded, after

            results, recorded, after = asyncio.run(session())
        finally:
            engine.shutdown()
    measured = fit_performance(results).performance
    measured_after = fit_performance(after).performance
    print(f"measured figures: before {measured.model_dump()}", flush=True)
    print(f"                  after  {measured_after.model_dump()}", flush=True)
    path = args.record or Path(tempfile.mkstemp(prefix="sim-validation-", suffix=".jsonl")[1])
    head = {"profile": profile.name, "machine": machine, "rate_per_s": args.rate}
    head["measured_performance"] = measured.model_dump()
    head["measured_after"] = measured_after.model_dump()
    with path.open("w") as f:
        f.write(json.dumps(head) + "\n")
        for r in recorded:
            f.write(json.dumps(r) + "\n")
    print(f"recorded load: {path}", flush=True)
    return measured, measured_after, recorded, machine


def analyse(
    profile: Profile,
    measured: Performance,
    measured_after: Performance | None,
    recorded: list[dict],
    machine: str,
    args: argparse.Namespace,
) -> None:
    arrivals = np.array([r["arrival_s"] for r in recorded])
    real_arrays = {k: np.array([r[k] for r in recorded]) for k in ("ttft_s", "e2e_s", "tpot_s")} | {
        "tokens": np.array([r["output_tokens"] for r in recorded])
    }
    real = summary(arrivals, **real_arrays)
    sims = {"measured": simulate(one_replica_catalog(profile, measured), recorded)}
    if measured_after is not None:
        sims["after"] = simulate(one_replica_catalog(profile, measured_after), recorded)
    sims["catalog"] = simulate(one_replica_catalog(profile), recorded)
    report = {
        "profile": profile.name,
        "machine": machine,
        "requests": len(recorded),
        "rate_per_s": args.rate,
        "measured_performance": measured.model_dump(),
        "measured_after": measured_after.model_dump() if measured_after else None,
        "catalog_performance": profile.performance.model_dump(),
        "real": real,
    }
    print(f"{'':28s}{'TTFT mean':>11s}{'TTFT p50':>10s}{'TPOT mean':>11s}{'tok/s':>9s}")
    print(
        f"{'real engine':28s}{real['ttft_mean_s']:11.3f}{real['ttft_p50_s']:10.3f}"
        f"{real['tpot_mean_s']:11.4f}{real['throughput_tok_s']:9.2f}"
    )
    for name, sim in sims.items():
        s = summary(
            arrivals - arrivals.min(), sim["ttft_s"], sim["e2e_s"], sim["tpot_s"], sim["tokens"]
        )
        e = errors(s, real)
        report[f"sim_{name}"] = s
        report[f"error_{name}"] = e
        print(
            f"{'sim, ' + name + ' figures':28s}{s['ttft_mean_s']:11.3f}{s['ttft_p50_s']:10.3f}"
            f"{s['tpot_mean_s']:11.4f}{s['throughput_tok_s']:9.2f}   error TTFT "
            f"{e['ttft_mean_s']:+.0%}, TPOT {e['tpot_mean_s']:+.0%}, "
            f"throughput {e['throughput_tok_s']:+.0%}"
        )
    servers.write_json(args.json, report)
    if args.plot:
        plot(
            real_arrays,
            sims,
            args.plot,
            f"{profile.name}: {len(recorded)} requests at {args.rate}/s",
        )


if __name__ == "__main__":
    main()
