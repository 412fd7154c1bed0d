"""The control plane at load, on the stub engine: orchestrator beside plain Ray Serve LLM.

    flock /tmp/orchestrator-ray.lock nice -n 5 python3 bench/control_plane.py \
        [--requests 200 --rounds 2 --rates 25,50,100,150 --json cp.json --plot cp.png]

One Ray cluster (`orchestrator serve --deployments deployments/stub.yaml`), one Serve proxy,
three applications, each over its own replica of the SAME stub engine (deployments/stub.yaml,
orchestrator/serving/stub_engine.py: no model, first token `ttft_ms` after arrival):

- `orchestrator` at `/`: one ingress replica (the CLI's default);
- `plain` at `/plain`: `ray.serve.llm.build_openai_app` on exactly the `LLMConfig`
  orchestrator builds for the stub profile, its LLMServer given the stub engine through Ray
  Serve LLM's engine-class hook (`RAYLLM_VLLM_ENGINE_CLS` in the replica's environment);
- `orch2` at `/orch2` (with `--scaling`): orchestrator again with TWO ingress replicas (both
  orchestrator apps then share one PostgreSQL ledger, started from tests/pg_server.py).

Load points, each measured A B B A per round (`--rounds`), `--requests` requests per block:
closed loop at `--concurrency` (non-streamed, then 64-token streams), open-loop Poisson
arrivals at each of `--rates` req/s (non-streamed), and with `--scaling` a closed loop at
`--scaling-concurrency` through one and two ingress replicas. Non-streamed requests ask for one
token, so the stub's configured latency is its TTFT; a stream's is its TTFT to the first token.

Reported per load point and side: offered and achieved req/s, latency added over the stub's
configured TTFT (p50 / p99), errors, and CPU ms per answered request of each process (Serve's
proxy, the ingress replica(s), the stub's LLMServer replica; utime+stime from
/proc/<pid>/stat before and after each block) with each process's CPU use in cores over the
block, the bench's own client process too, and the cores of each process's Python threads
(`/proc/<pid>/task/<tid>/schedstat`: the threads that share its one GIL; per replica): the
cores they ran on and the share of the block they wanted a core. The limit named is a process
whose Python threads wanted a core `SATURATED` (90 %) of the time (its event loop never idles:
the GIL, or the machine's cores when it waited for them, caps it; such a process shows no full
core), else the machine when all its cores were busy; the process named comes with its
measured CPU (cores, % of the machine's cores, % of the CPU the machine spent in the block),
and the scaling point lists every process's cores with one and with two ingress replicas.
The proxy is shared: its figure
is the side being measured. Prints the machine and its load; `--json`, `--plot` (added latency
against offered load, and CPU per request).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import servers  # noqa: E402

from orchestrator.catalog import load_catalog  # noqa: E402

STUB_CATALOG = ROOT / "deployments" / "stub.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROMPT = "Summarise in one sentence why rivers in Europe flow the way they do. " * 3
# distinct prompts (default): each request's text is new, as in real traffic, so no memo of a
# recurring text (the tokenizer's, the predictor's featurizations) answers it; `--same-prompt`
# sends PROMPT every time (the best case for those memos; how runs before 2026-12-07 sent)
SAME_PROMPT = False
SENT = itertools.count()


def prompt() -> str:
    """The next request's user message."""
    return PROMPT if SAME_PROMPT else f"Request {next(SENT)}: {PROMPT}"


STREAM_TOKENS = 64

EXTRA_APPS = """
import json, sys
import ray
from ray import serve
spec = json.loads(sys.argv[1])
ray.init(address="auto")
if spec["app"] == "plain":
    from ray.serve.llm import build_openai_app
    from orchestrator.catalog import load_catalog
    from orchestrator.serving.app import INGRESS_NUM_CPUS, build_llm_configs
    configs = []
    for config in build_llm_configs(load_catalog(spec["deployments"])).values():
        env = {**config.runtime_env.get("env_vars", {}), "RAYLLM_VLLM_ENGINE_CLS": spec["engine"]}
        configs.append(config.model_copy(update={"runtime_env": {**config.runtime_env, "env_vars": env}}))
    app = build_openai_app({"llm_configs": configs,
                            "ingress_deployment_config": {"ray_actor_options": {"num_cpus": INGRESS_NUM_CPUS}}})
else:
    from orchestrator.serving.app import build_app
    app = build_app(spec["args"])
serve.run(app, name=spec["app"], route_prefix="/" + spec["app"])
print(spec["app"], "ready", flush=True)
"""

# processes of each side, by the Serve replica's process title
SIDES = {
    "orchestrator": {
        "ingress": "ServeReplica:orchestrator:ingress",
        "engine": "ServeReplica:orchestrator:profile:",
    },
    "plain": {
        "ingress": "ServeReplica:plain:OpenAiIngress",
        "engine": "ServeReplica:plain:LLMServer",
    },
    "orch2": {"ingress": "ServeReplica:orch2:ingress", "engine": "ServeReplica:orch2:profile:"},
}
PROXY = "ProxyActor"


# ---------------------------------------------------------------- processes


def find_pids(pattern: str) -> list[int]:
    """Pids whose command line (Ray sets it to the actor's title) contains `pattern`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmd.startswith("ray::") and pattern in cmd:
            found.append(int(entry))
    return sorted(found)


def _stat_ms(path: str) -> float:
    """utime + stime from a /proc `stat` file, in ms (0 when it is gone)."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all its threads), in ms."""
    return _stat_ms(f"/proc/{pid}/stat")


def python_threads(pid: int) -> dict[int, tuple[int, int]]:
    """(ns on a core, ns runnable but waiting for one) of each of a process's Python threads,
    by thread id (`/proc/<pid>/task/<tid>/schedstat`).

    A Python thread keeps the name its process had when the thread started (`ray::...` in a
    Ray actor: the main thread, Serve's user-code and router event loops, worker threads; the
    main thread's name elsewhere); Ray's C++ threads name themselves (`worker.io`,
    `grpc_global_tim`, ...) and run without the GIL. A Python thread waiting for the GIL
    sleeps, so these threads' time on a core or in the run queue is the time the process's
    one GIL was wanted."""
    found: dict[int, tuple[int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        main = Path(f"/proc/{pid}/comm").read_text()  # the bench's client: `python3`
    except OSError:
        return found
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text()
            if name.startswith("ray::") or name == main:
                ran, waited = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:2]
                found[int(tid)] = (int(ran), int(waited))
        except (OSError, ValueError):
            continue
    return found


def rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def side_processes(side: str) -> dict[str, list[int]]:
    return {
        "proxy": find_pids(PROXY),
        "ingress": find_pids(SIDES[side]["ingress"]),
        "engine": find_pids(SIDES[side]["engine"]),
    }


# ---------------------------------------------------------------- load


@dataclass
class Block:
    """One measured block of requests against one side."""

    latencies_ms: list[float] = field(default_factory=list)  # to the first token (streams)
    errors: int = 0
    wall_s: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    cores: dict[str, float] = field(default_factory=dict)
    # per process of a role (replicas: busiest first), its Python threads (one GIL): the cores
    # they ran on, and the share of the block they wanted a core (ran or waited in the run
    # queue; >= SATURATED: its event loop never idles)
    gil_cores: dict[str, list[float]] = field(default_factory=dict)
    gil_wanted: dict[str, list[float]] = field(default_factory=dict)
    # per process of a role, in the order above: its CPU (all threads) in cores
    proc_cores: dict[str, list[float]] = field(default_factory=dict)
    machine_busy: float = 0.0

    def record(self, ms: float | None) -> None:
        """One answer's latency, or None for an error."""
        if ms is None:
            self.errors += 1
        else:
            self.latencies_ms.append(ms)


async def one_request(session, url: str, model: str, stream: bool) -> float | None:
    """Latency in ms (to the first content token for a stream), None on an error."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt()}],
        "max_tokens": STREAM_TOKENS if stream else 1,
        "stream": stream,
    }
    start = time.perf_counter()
    try:
        async with session.post(url, json=body) as r:
            if r.status != 200:
                await r.read()
                return None
            if not stream:
                data = await r.json()
                return (time.perf_counter() - start) * 1000 if data.get("choices") else None
            first = None
            async for raw in r.content:
                line = raw.decode().strip()
                content = '"content":"' in line and '"content":""' not in line
                if first is None and line.startswith("data: {") and content:
                    first = (time.perf_counter() - start) * 1000
            return first
    except Exception:  # noqa: BLE001 - a transport error counts as an error, the bench goes on
        return None


async def closed_loop(url: str, model: str, n: int, concurrency: int, stream: bool) -> Block:
    import aiohttp

    block = Block()
    left = n

    async def worker(session) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            block.record(await one_request(session, url, model, stream))

    started = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    block.wall_s = time.perf_counter() - started
    return block


async def open_loop(url: str, model: str, n: int, rate: float, seed: int) -> Block:
    """`n` requests with Poisson arrivals at `rate`/s, sent whatever the answers do."""
    import aiohttp

    block = Block()
    rng = random.Random(seed)

    async def send(session, at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        block.record(await one_request(session, url, model, False))

    started = time.perf_counter()
    arrivals, t = [], started
    for _ in range(n):
        t += rng.expovariate(rate)
        arrivals.append(t)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        await asyncio.gather(*(send(session, at) for at in arrivals))
    block.wall_s = time.perf_counter() - started
    return block


def measured(side: str, load: Coroutine[Any, Any, Block]) -> Block:
    """Run `load` (not yet started) with the side's processes' CPU read around it."""
    procs = {**side_processes(side), "client": [os.getpid()]}  # the bench's own load generator
    each0 = {p: cpu_ms(p) for pids in procs.values() for p in pids}
    before = {k: sum(each0[p] for p in pids) for k, pids in procs.items()}
    threads0 = {p: python_threads(p) for pids in procs.values() for p in pids}
    busy0, total0 = machine_busy()
    block = asyncio.run(load)
    busy1, total1 = machine_busy()
    for k, pids in procs.items():
        used = sum(cpu_ms(p) for p in pids) - before[k]
        answered = max(1, len(block.latencies_ms))
        block.cpu_ms[k] = used / answered
        block.cores[k] = used / 1000 / block.wall_s
        gil = []
        for p in pids:  # a thread that started during the block counts from zero
            ran = waited = 0
            for t, (r, w) in python_threads(p).items():
                r0, w0 = threads0[p].get(t, (0, 0))
                ran, waited = ran + r - r0, waited + w - w0
            own = (cpu_ms(p) - each0[p]) / 1000 / block.wall_s
            gil.append((ran / 1e9 / block.wall_s, (ran + waited) / 1e9 / block.wall_s, own))
        gil.sort(reverse=True, key=lambda cwo: cwo[1])
        block.gil_cores[k] = [c for c, _, _ in gil]
        block.gil_wanted[k] = [w for _, w, _ in gil]
        block.proc_cores[k] = [o for _, _, o in gil]
    block.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    return block


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(blocks: list[Block], ttft_ms: float, offered: float | None) -> dict:
    lat = [x for b in blocks for x in b.latencies_ms]
    answered = len(lat)
    wall = sum(b.wall_s for b in blocks)
    weights = [len(b.latencies_ms) for b in blocks]
    total = max(1, sum(weights))
    keys = blocks[0].cpu_ms
    return {
        "offered_rps": offered,
        "achieved_rps": answered / wall if wall else 0.0,
        "answered": answered,
        "errors": sum(b.errors for b in blocks),
        "added_p50_ms": pct(lat, 0.5) - ttft_ms,
        "added_p99_ms": pct(lat, 0.99) - ttft_ms,
        "cpu_ms_per_request": {
            k: sum(b.cpu_ms[k] * w for b, w in zip(blocks, weights, strict=True)) / total
            for k in keys
        },
        "cores": {k: statistics.fmean(b.cores[k] for b in blocks) for k in keys},
        **{
            name: {
                k: [
                    statistics.fmean(col)
                    for col in zip(*(getattr(b, name)[k] for b in blocks), strict=False)
                ]
                for k in keys
            }
            for name in ("gil_cores", "gil_wanted", "proc_cores")
        },
        "machine_busy": statistics.fmean(b.machine_busy for b in blocks),
    }


# A Python process is at its limit when its Python threads, which share one GIL, want a core
# (run, or wait in the run queue) nearly all the time: its event loop never idles, so every
# await resumes late. It shows no full core: on a quiet machine the GIL's hand-overs and its
# C++ threads' work (gRPC) leave ~0.2-0.3 of it (the quiet-machine runs of 2026-12-06: an
# ingress at 0.72-0.84 cores added 80-100 ms at p50 over plain Serve); on a busy machine it
# gets less than a core and waits for one.
SATURATED = 0.9
MACHINE_FULL = 0.95  # the machine this busy caps every process on it


def cpu_share(s: dict, proc: str) -> str:
    """The CPU one process (the busiest replica of `proc`) used over the block: cores, the
    share of the machine's cores, and the share of all CPU the machine spent meanwhile."""
    own = (s.get("proc_cores", {}).get(proc) or [0.0])[0]
    ncpu = os.cpu_count() or 1
    spent = s["machine_busy"] * ncpu
    return (
        f"CPU {own:.2f} cores = {100 * own / ncpu:.0f} % of the machine's {ncpu}, "
        f"{100 * own / spent if spent else 0:.0f} % of its busy CPU"
    )


def cores_line(s: dict) -> str:
    """Every measured process's CPU in cores (replicas joined by +), busiest role first."""
    each = s.get("proc_cores", {})
    ranked = sorted(each.items(), key=lambda kv: -sum(kv[1]))
    return ", ".join(f"{k} " + "+".join(f"{c:.2f}" for c in v) for k, v in ranked)


def limit_of(s: dict) -> str:
    """What capped a block: the process (the busiest replica of a role) whose Python threads
    wanted a core at least `SATURATED` of the time, the GIL if it got what it wanted, else
    the machine's cores; else the machine when all its cores were busy; else nothing
    measured here (the load did not reach any limit). With the busiest process's figures."""
    wanted = {k: (v[0] if v else 0.0) for k, v in s["gil_wanted"].items()}
    proc, want = max(wanted.items(), key=lambda kv: kv[1])
    cores = s["gil_cores"][proc][0] if s["gil_cores"][proc] else 0.0
    replicas = len(s["gil_wanted"][proc])
    name = f"{proc} (busiest of {replicas} replicas)" if replicas > 1 else proc
    busy = s["machine_busy"]
    figures = f"{cpu_share(s, proc)}; Python threads on a core {cores:.2f}, wanting one {want:.2f}"
    if want >= SATURATED:
        short = want - cores  # waited in the run queue
        why = "the machine's cores" if short > cores / 2 and busy >= MACHINE_FULL else "one GIL"
        verdict = f"{name}, its event loop saturated by {why} ({figures})"
    elif busy >= MACHINE_FULL:
        verdict = f"the machine (all cores busy; busiest {proc}: {figures})"
    else:
        verdict = f"none (busiest {proc}: {figures}; cores left)"
    return f"{verdict}; machine {100 * busy:.0f} % busy"


# ---------------------------------------------------------------- servers


def start_cluster(
    work: Path, ledger: str, env: dict, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """`orchestrator serve` on the stub catalog (plus `extra` flags), in this session."""
    proc, base = servers.start_serve(
        work / "orchestrator.log", ledger, "--deployments", str(STUB_CATALOG), *extra, env=env
    )
    servers.wait_ready(f"{base}/healthz", proc, servers.all_profiles_ready)
    return proc, base


def deploy(spec: dict, work: Path, env: dict, server: subprocess.Popen) -> None:
    """Run an extra app into `server`'s Ray cluster (named: see `servers.cluster_env`)."""
    servers.run_python(EXTRA_APPS, json.dumps(spec), log=work / f"{spec['app']}.log",
                       env=servers.cluster_env(server, env))  # fmt: skip


def start_py_spy(pids: list[int], out: Path, block: int) -> subprocess.Popen:
    """py-spy sampling the first ingress replica's GIL holder until SIGINT (raw stacks)."""
    return subprocess.Popen(
        ["py-spy", "record", "--gil", "-r", "200", "-f", "raw", "--nonblocking",
         "-o", f"{out}.{block}", "-p", str(pids[0])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# ---------------------------------------------------------------- report


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for side, colour in (("plain", "tab:blue"), ("orchestrator", "tab:orange")):
        pts = sorted(
            (r[side]["offered_rps"], r[side]["added_p50_ms"], r[side]["added_p99_ms"])
            for k, r in results.items()
            if k.startswith("open")
        )
        if pts:
            xs = [p[0] for p in pts]
            ax.plot(xs, [p[1] for p in pts], "o-", color=colour, label=f"{side} p50")
            ax.plot(xs, [p[2] for p in pts], "s--", color=colour, label=f"{side} p99")
    ax.set_xlabel("offered load (req/s, non-streamed, open loop)")
    ax.set_ylabel("latency added over the stub's TTFT (ms)")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=8)
    ax.set_title("added latency against offered load", fontsize=9)
    points = [k for k in results if not k.startswith("open") and "plain" in results[k]]
    procs = ("proxy", "ingress", "engine")
    width = 0.8 / (2 * len(procs))
    for i, point in enumerate(points):
        for j, side in enumerate(("plain", "orchestrator")):
            for m, proc in enumerate(procs):
                x = i + (j * len(procs) + m - len(procs) + 0.5) * width
                bx.bar(
                    x,
                    results[point][side]["cpu_ms_per_request"][proc],
                    width,
                    color=("tab:blue", "tab:orange")[j],
                    alpha=(1.0, 0.7, 0.4)[m],
                    label=f"{side} {proc}" if i == 0 else None,
                )
    bx.set_xticks(range(len(points)), points, fontsize=8)
    bx.set_ylabel("CPU ms per request")
    bx.legend(fontsize=7)
    bx.set_title("CPU per request per process (same run, A B B A)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per block")
    parser.add_argument("--rounds", type=int, default=2, help="A B B A rounds per load point")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop concurrency")
    parser.add_argument("--rates", default="25,50,100,150", help="open-loop req/s, comma-separated")
    parser.add_argument("--scaling", action="store_true", help="also one vs two ingress replicas")
    parser.add_argument("--scaling-concurrency", type=int, default=32)
    parser.add_argument("--only", default="", help="comma-separated load points to run (names)")
    parser.add_argument(
        "--same-prompt",
        action="store_true",
        help="send one prompt every time (default: a distinct prompt per request)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="collapsed stacks (py-spy --gil) of orchestrator's ingress over its closed-loop "
        "non-streamed blocks, written here",
    )
    args = parser.parse_args()
    global SAME_PROMPT
    SAME_PROMPT = args.same_prompt

    profile = load_catalog(STUB_CATALOG).profiles[0]
    assert profile.stub_engine is not None
    ttft = profile.stub_engine.ttft_ms
    family = profile.served_model_name
    work = servers.bench_workdir("bench-control-plane-")
    env = servers.serve_env()
    pg = None
    ledger = str(work / "usage.sqlite3")
    if args.scaling:
        from tests.pg_server import PostgresServer, find_binaries

        bin_dir = find_binaries()
        if bin_dir is None:
            sys.exit("--scaling needs PostgreSQL binaries (see tests/pg_server.py)")
        pg = PostgresServer.start(bin_dir, durable=True)
        ledger = pg.url
    server = None
    results: dict = {}
    try:
        server, base = start_cluster(work, ledger, env)
        deploy(
            {"app": "plain", "deployments": str(STUB_CATALOG),
             "engine": "orchestrator.serving.stub_engine:StubEngine"},
            work, env, server,
        )  # fmt: skip
        urls = {"orchestrator": base, "plain": f"{base}/plain"}
        # plain Serve LLM knows the profile's model id only; orchestrator serves the family
        models = {"orchestrator": family, "plain": profile.name, "orch2": family}
        if args.scaling:
            deploy(
                {"app": "orch2", "args": {
                    "deployments": str(STUB_CATALOG), "ledger": ledger,
                    "policy": str(ROOT / "policies" / "default.yaml"),
                    "ingress_min_replicas": 2, "ingress_max_replicas": 2}},
                work, env, server,
            )  # fmt: skip
            urls["orch2"] = f"{base}/orch2"
        for side, url in urls.items():
            servers.wait_ready(f"{url}/v1/models", server)
            for p, pids in side_processes(side).items():
                print(f"  {side} {p}: pids {pids}", flush=True)
        print(f"all ready; {servers.outrank_servers()}; warming up", flush=True)
        for side, url in urls.items():
            for stream in (False, True):
                warm = asyncio.run(
                    closed_loop(f"{url}/v1/chat/completions", models[side], 24, 4, stream)
                )
                if warm.errors:
                    sys.exit(f"{side} answered {warm.errors} of 24 warm-up requests with errors")

        points: dict[str, tuple] = {
            f"closed c={args.concurrency}": (
                "closed",
                args.concurrency,
                False,
                ("plain", "orchestrator"),
            ),
            f"stream{STREAM_TOKENS} c={args.concurrency}": (
                "closed",
                args.concurrency,
                True,
                ("plain", "orchestrator"),
            ),
        }
        for rate in [float(r) for r in args.rates.split(",") if r]:
            points[f"open {rate:g}/s"] = ("open", rate, False, ("plain", "orchestrator"))
        if args.scaling:
            c = args.scaling_concurrency
            points[f"scaling c={c}"] = ("closed", c, False, ("orchestrator", "orch2"))
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        for name, (kind, level, stream, pair) in points.items():
            if only and name not in only:
                continue
            blocks: dict[str, list[Block]] = {side: [] for side in pair}
            for r in range(args.rounds):
                for i, side in enumerate((pair[0], pair[1], pair[1], pair[0])):
                    url = f"{urls[side]}/v1/chat/completions"
                    model = models[side]
                    load = (
                        open_loop(url, model, args.requests, level, r * 4 + i)
                        if kind == "open"
                        else closed_loop(url, model, args.requests, int(level), stream)
                    )
                    spy = None
                    if args.py_spy and side == "orchestrator" and kind == "closed" and not stream:
                        spy = start_py_spy(side_processes(side)["ingress"], args.py_spy, r * 4 + i)
                    blocks[side].append(measured(side, load))
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(60)
            results[name] = {
                side: summary(bl, ttft, level if kind == "open" else None)
                for side, bl in blocks.items()
            }
            if "orch2" in results[name]:
                results[name]["orch2"]["ingress_replicas"] = 2
            for side in pair:
                s = results[name][side]
                cpu = s["cpu_ms_per_request"]
                print(
                    f"{name:16s} {side:12s} {s['achieved_rps']:7.1f} req/s  added p50 "
                    f"{s['added_p50_ms']:7.1f} p99 {s['added_p99_ms']:7.1f} ms  errors {s['errors']:3d}  "
                    f"CPU ms/req proxy {cpu['proxy']:5.1f} ingress {cpu['ingress']:5.1f} "
                    f"engine {cpu['engine']:5.1f}  cores "
                    + " ".join(f"{k} {v:.2f}" for k, v in s["cores"].items())
                    + "  GIL cores/wanted "
                    + " ".join(
                        f"{k} "
                        + "+".join(
                            f"{c:.2f}/{w:.2f}" for c, w in zip(v, s["gil_wanted"][k], strict=True)
                        )
                        for k, v in s["gil_cores"].items()
                    )
                    + f"  limit: {limit_of(s)}",
                    flush=True,
                )
    finally:
        if server is not None:
            servers.stop(server)
        if pg is not None:
            pg.stop()
    print(f"\nload average at the end {servers.load_average()}")
    report(results, ttft)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"stub_ttft_ms": ttft, "same_prompt": SAME_PROMPT, "results": results}, indent=2
            )
        )
    if args.plot:
        plot(results, args.plot)


def report(results: dict, ttft: float) -> None:
    """The acceptance figures of issue 30, from whatever load points ran."""
    for name, r in results.items():
        if "plain" in r and not name.startswith("open"):
            o, p = r["orchestrator"]["cpu_ms_per_request"], r["plain"]["cpu_ms_per_request"]
            print(
                f"{name}: ingress CPU {o['ingress']:.1f} ms/request, plain {p['ingress']:.1f} "
                f"(ratio {o['ingress'] / max(p['ingress'], 1e-9):.2f}); proxy {o['proxy']:.1f} vs "
                f"{p['proxy']:.1f}; engine {o['engine']:.1f} vs {p['engine']:.1f}"
            )
    opens = sorted(
        (r["orchestrator"]["offered_rps"], r["orchestrator"])
        for k, r in results.items()
        if k.startswith("open")
    )
    held = [s for _, s in opens if s["added_p99_ms"] <= 50 and s["errors"] == 0
            and s["achieved_rps"] >= 0.95 * s["offered_rps"]]  # fmt: skip
    if opens:
        best = held[-1] if held else None
        print(
            "one ingress replica sustains "
            + (f"{best['achieved_rps']:.1f} req/s with added p99 {best['added_p99_ms']:.1f} ms"
               if best else "no offered rate with added p99 <= 50 ms")
            + f"; at {opens[-1][0]:g}/s offered: {opens[-1][1]['achieved_rps']:.1f} req/s, "
            f"limit {limit_of(opens[-1][1])}"
        )  # fmt: skip
    for name, r in results.items():
        if "orch2" in r:
            one, two = r["orchestrator"], r["orch2"]
            print(
                f"{name}: two ingress replicas {two['achieved_rps']:.1f} req/s vs one "
                f"{one['achieved_rps']:.1f} ({two['achieved_rps'] / max(one['achieved_rps'], 1e-9):.2f}x); "
                f"limit with one: {limit_of(one)}; with two: {limit_of(two)}"
            )
            for n, side in ((1, one), (2, two)):
                print(f"  cores per process with {n}: {cores_line(side)}")


if __name__ == "__main__":
    main()
