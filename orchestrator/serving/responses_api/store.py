"""The conversation store behind `previous_response_id` (one ingress replica's memory; the
shared one is `serving.shared_responses`)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from orchestrator.serving.errors import OrchestratorHTTPError

# ---------------------------------------------------------------- conversation store


@dataclass(frozen=True)
class StoredResponse:
    tenant: str
    messages: tuple[dict[str, Any], ...]  # the whole conversation, the answer included


class ResponseStore:
    """The last `capacity` stored conversations by response id (per ingress replica, in
    memory: a restart forgets them, and `previous_response_id` then gets a 400)."""

    def __init__(self, capacity: int = 2_000):
        self.capacity = capacity
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, response_id: str, stored: StoredResponse) -> None:
        self._items[response_id] = stored
        self._items.move_to_end(response_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def history(self, response_id: str, tenant: str) -> list[dict[str, Any]]:
        found = self._items.get(response_id)
        if found is None or found.tenant != tenant:
            raise not_stored(response_id)
        return [dict(m) for m in found.messages]


def not_stored(response_id: str) -> OrchestratorHTTPError:
    """The 400 for a `previous_response_id` no store has for this tenant."""
    return OrchestratorHTTPError(
        400,
        f"previous response '{response_id}' is not stored on this server (it was made "
        "with store=false, by another tenant, or has been evicted)",
        param="previous_response_id",
        code="previous_response_not_found",
    )
