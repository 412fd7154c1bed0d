"""Where the controller's last decision is published and read back (edge: a named Ray actor).

The planner runs inside the Serve controller; the ingress (GET /v1/orchestrator/status) and
its router need the decision. `publish_decision` puts it, fire-and-forget, on a tiny named
actor (0 CPUs, owned by the Serve controller, so it lives and dies with it); `read_status`
fetches it. Nothing here blocks the Serve control loop.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("orchestrator.controller")

BOARD_NAME = "orchestrator-controller-status"
BOARD_NAMESPACE = "orchestrator"

_board: Any = None


def _board_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class StatusBoard:
        def __init__(self) -> None:
            self._doc: dict[str, Any] | None = None

        def put(self, doc: dict[str, Any]) -> None:
            self._doc = doc

        def get(self) -> dict[str, Any] | None:
            return self._doc

    return StatusBoard


def status_document(decision: Any, observation: Any, policy: Any = None) -> dict[str, Any]:
    """The published document: the decision plus what it was based on (the observation and
    the version of the policy it planned under, `policy_version`)."""
    doc = decision.model_dump(mode="json")
    doc["observation"] = observation.model_dump(mode="json")
    doc["policy_version"] = policy.version if policy is not None else None
    return doc


def publish_decision(decision: Any, observation: Any, policy: Any = None) -> None:
    global _board
    import ray

    if not ray.is_initialized():
        return
    if _board is None:
        _board = (
            _board_class()
            .options(name=BOARD_NAME, namespace=BOARD_NAMESPACE, get_if_exists=True)
            .remote()
        )
    _board.put.remote(status_document(decision, observation, policy))


async def read_status() -> dict[str, Any] | None:
    """The last published decision (None before the first plan, or without the board)."""
    import ray

    try:
        board = ray.get_actor(BOARD_NAME, namespace=BOARD_NAMESPACE)
    except ValueError:
        return None
    return await board.get.remote()
