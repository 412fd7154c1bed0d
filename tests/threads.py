"""Run one callable from several threads at once and collect what they raised."""

from __future__ import annotations

import threading
from collections.abc import Callable


def errors_when_run_at_once(work: Callable[[], object], threads: int) -> list[BaseException]:
    """Start `threads` threads running `work`, wait for all; the exceptions they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - collected for the caller's assert
            errors.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return errors
