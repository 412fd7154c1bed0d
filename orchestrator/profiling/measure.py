"""Run a sweep on a profile's engine and fit its figures; write them as catalog YAML."""

from __future__ import annotations

import asyncio
import platform
import re
from collections.abc import Callable
from datetime import UTC, datetime

import yaml

from orchestrator.catalog.schema import Performance, Profile
from orchestrator.profiling.engine import ProfileEngine, profile_environment
from orchestrator.profiling.fit import FitReport, fit_performance
from orchestrator.profiling.sweep import StepResult, SweepStep, sweep_plan

Progress = Callable[[int, int, SweepStep, StepResult], None]


def describe(result: StepResult) -> str:
    """One line of what a step measured."""
    reqs = result.requests
    if result.step.kind == "decode":
        tpots = sorted(t.tpot_s for t in reqs if t.tpot_s)
        if not tpots:
            return "no decode timing"
        tpot = tpots[len(tpots) // 2]
        return f"TPOT {1000 * tpot:.1f} ms, aggregate {result.step.batch / tpot:.1f} tok/s"
    ttft = sorted(1000 * t.first_token_s for t in reqs)
    cached = sum(t.cached_tokens for t in reqs)
    extra = f", {cached} cached tokens" if result.step.kind == "prefix" else ""
    return f"TTFT {ttft[len(ttft) // 2]:.1f} ms{extra}"


def measure_profile(
    profile: Profile,
    *,
    quick: bool = False,
    steps: list[SweepStep] | None = None,
    progress: Progress | None = None,
) -> tuple[FitReport, list[StepResult]]:
    """Start the profile's engine in-process, run the sweep, fit; the engine is shut down."""
    plan = steps if steps is not None else sweep_plan(profile, quick=quick)
    with profile_environment(profile):
        engine = ProfileEngine.start(profile)
        try:
            results = asyncio.run(_sweep(engine, plan, progress))
        finally:
            engine.shutdown()
    return fit_performance(results), results


async def _sweep(
    engine: ProfileEngine, plan: list[SweepStep], progress: Progress | None
) -> list[StepResult]:
    await engine.warm_up()
    results = []
    for i, step in enumerate(plan, 1):
        result = await engine.run_step(step)
        results.append(result)
        if progress:
            progress(i, len(plan), step, result)
    return results


def machine() -> str:
    """CPU, cores and the load average: a shared machine's load changes the figures."""
    import os

    try:
        load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "load average n/a"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {load}"


def performance_yaml(profile: Profile, report: FitReport) -> str:
    """A catalog fragment: the profile's name and its measured `performance:` block."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# orchestrator profile measure: {profile.name} on {machine()}, {stamp}",
        "# decode aggregate tok/s by batch: "
        + ", ".join(f"{b}: {v:.1f}" for b, v in report.decode_curve.items()),
        f"# prefill fit r^2 {report.prefill_r2:.3f}",
    ]
    if report.cached_prefix_cost is not None:
        lines.append(
            f"# a prefix-cache hit costs {report.cached_prefix_cost:.2f} of a prefilled token "
            f"({report.cached_tokens_seen} cached tokens seen)"
        )
    lines += [f"# note: {n}" for n in report.notes]
    body = {"name": profile.name, "performance": report.performance.model_dump()}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False)


_PERF_KEYS = tuple(Performance.model_fields)


def replace_performance(catalog_text: str, profile_name: str, perf: Performance) -> str:
    """The catalog text with `profile_name`'s performance block set to `perf`.

    Edits the text in place (comments elsewhere survive): finds `- name: <profile>`, then its
    `performance:` mapping, and rewrites that block with the same indentation. Comments inside
    the old block are dropped (they described the old figures).
    """
    lines = catalog_text.splitlines(keepends=True)
    start = next(
        (
            i
            for i, ln in enumerate(lines)
            if re.match(rf"^\s*- name:\s*{re.escape(profile_name)}\s*(#.*)?$", ln)
        ),
        None,
    )
    if start is None:
        raise KeyError(f"profile {profile_name!r} not found in the catalog text")
    item_indent = len(lines[start]) - len(lines[start].lstrip(" -"))
    perf_at = None
    for i in range(start + 1, len(lines)):
        ln = lines[i]
        if re.match(r"^\s*- name:", ln):
            break
        if re.match(rf"^ {{{item_indent}}}performance:\s*(#.*)?$", ln):
            perf_at = i
            break
    if perf_at is None:
        raise KeyError(f"profile {profile_name!r} has no block-style `performance:` mapping")
    end = perf_at + 1
    while end < len(lines) and _inside(lines, end, item_indent):
        end += 1
    pad = " " * (item_indent + 2)
    block = [lines[perf_at]] + [f"{pad}{k}: {_num(getattr(perf, k))}\n" for k in _PERF_KEYS]
    return "".join(lines[:perf_at] + block + lines[end:])


def _inside(lines: list[str], i: int, indent: int) -> bool:
    """Line i belongs to a block nested deeper than `indent` (blank lines count if followed by one)."""
    if lines[i].strip():
        return _indent(lines[i]) > indent
    return i + 1 < len(lines) and bool(lines[i + 1].strip()) and _indent(lines[i + 1]) > indent


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _num(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
