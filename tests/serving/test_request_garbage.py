"""A served request is freed by reference counting: no cycle is left to Python's collector."""

from __future__ import annotations

import gc

from tests.serving.conftest import FAMILY, MESSAGES, serve_body


async def _cyclic_garbage_of_one_request(ingress, engine_stream) -> set[str]:
    """The type names of the cyclic garbage one served request leaves."""
    ingress.handle.streams.append(engine_stream())
    assert (
        await serve_body(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    ).status_code == 200
    gc.collect()  # what the first request created once (caches, lazy imports) is not counted
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        ingress.handle.streams.append(engine_stream())
        body = {"model": FAMILY, "messages": MESSAGES, "max_tokens": 8}
        assert (await serve_body(ingress, body, "chat")).status_code == 200
        gc.collect()
        return {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_a_served_request_leaves_no_cyclic_garbage(ingress, chat_completion):
    kinds = await _cyclic_garbage_of_one_request(ingress, chat_completion)
    # the run, its settlement and plan were a cycle through the settlement's hooks
    assert not kinds & {"RequestRun", "RequestSettlement", "EnginePlan", "Decision"}, kinds
