"""The load book's interactive quiet time: batch lines do not count as interactive traffic."""

from __future__ import annotations

import math

from orchestrator.serving.load_book import LoadBook


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_interactive_idle_time_ignores_background_requests():
    clock = Clock()
    book = LoadBook(clock)
    assert book.interactive_idle_s("cpu") == math.inf
    book.begin("line-1", "batch", "cpu", 0.0, background=True)
    assert book.interactive_idle_s("cpu") == math.inf and book.in_flight("cpu") == 1
    book.begin("chat-1", "acme", "cpu", 0.0)
    clock.now += 5
    assert book.interactive_idle_s("cpu") == 0.0
    book.end("chat-1")
    clock.now += 3
    assert book.interactive_idle_s("cpu") == 3.0
    book.end("line-1")
    assert book.interactive_idle_s("cpu") == 3.0


def test_a_moved_interactive_request_counts_on_its_new_profile():
    clock = Clock()
    book = LoadBook(clock)
    book.begin("chat-1", "acme", "a", 0.0)
    clock.now += 2
    book.move("chat-1", "b")
    assert book.interactive_idle_s("b") == 0.0
    assert book.interactive_idle_s("a") == 0.0  # it left `a` just now
    clock.now += 1
    assert book.interactive_idle_s("a") == 1.0
