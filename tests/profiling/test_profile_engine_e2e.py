"""`profile measure` on the embedded CPU profile: the real vLLM engine, a tiny sweep.

Starts a vLLM engine in-process: run under the machine lock
(`flock /tmp/orchestrator-ray.lock python3 -m pytest tests/profiling -m e2e`).
"""

from __future__ import annotations

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.profiling import SweepStep
from orchestrator.profiling.measure import measure_profile

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.own_server,
]  # its own engine: never beside the shared server

TINY = [
    SweepStep("decode", 1, 16, 6),
    SweepStep("decode", 2, 16, 6),
    SweepStep("prefill", 1, 16, 1),
    SweepStep("prefill", 1, 256, 1),
    SweepStep("prefix", 1, 272, 1, suffix_tokens=16),
]


def test_measure_the_embedded_cpu_profile():
    profile = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml").profile("smollm2-cpu")
    lines: list[str] = []
    report, results = measure_profile(
        profile, steps=TINY, progress=lambda i, n, step, r: lines.append(f"{i}/{n}")
    )
    assert lines == [f"{i}/5" for i in range(1, 6)]  # one progress line per step
    decode = [t for r in results if r.step.kind == "decode" for t in r.requests]
    assert len(decode) == 3 and all(t.output_tokens == 6 for t in decode)  # ignore_eos honoured
    assert all(t.prompt_tokens == 16 for t in decode)
    perf = report.performance
    assert perf.single_stream_tokens_per_s > 0 and perf.output_tokens_per_s > 0
    assert perf.prefill_tokens_per_s > 0 and perf.max_concurrency in (1, 2)
    # the prefix step's shared 256 tokens were served from the engine's prefix cache
    assert report.cached_tokens_seen > 0
