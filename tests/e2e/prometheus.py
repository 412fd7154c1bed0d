"""A real Prometheus for the e2e tests, scraping the server under test every second."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ports import free_port

PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"
)


@contextmanager
def prometheus(
    workdir: Path, target: str, *, rules: Path | None = None, labels: str | None = None
) -> Iterator[str]:
    """Prometheus scraping `target` (host:port) every second, with `labels` (a YAML flow map)
    on its series, evaluating `rules` every second if given; its data under `workdir`. Yields
    its base URL; stopped on exit."""
    assert PROMETHEUS is not None
    config = workdir / "prometheus.yml"
    extra = f", labels: {labels}" if labels else ""
    config.write_text(
        (
            f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{rules}']\n"
            if rules
            else "global: {scrape_interval: 1s}\n"
        )
        + "scrape_configs:\n"
        "  - job_name: orchestrator\n"
        f"    static_configs: [{{targets: ['{target}']{extra}}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
