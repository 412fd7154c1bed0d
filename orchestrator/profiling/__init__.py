"""Measure a profile's `performance:` figures on its real engine (`orchestrator profile measure`).

    plan = sweep_plan(profile, quick=False)          # pure: which steps to run
    timings = await run_step(engine, step, prompts)  # the edge: vLLM in-process
    figures = fit_performance(results)               # pure: steps -> Performance

docs/profiling.md gives the method and the figures measured on this machine.
"""

from orchestrator.profiling.fit import FitReport, fit_performance
from orchestrator.profiling.sweep import RequestTiming, StepResult, SweepStep, sweep_plan

__all__ = [
    "FitReport",
    "RequestTiming",
    "StepResult",
    "SweepStep",
    "fit_performance",
    "sweep_plan",
]
