"""The controller's alerts. The spend-ceiling alert: a log line and, inside Kubernetes, an
Event (edge: k8s API); the unplaced-demand alert: a log line (and a gauge at the ingress).

Raised when a decision starts binding the $/hour ceiling (and again if it stops binding, as
a Normal event), not on every tick. The Event goes through the official `kubernetes` client
in a background thread, so the Serve control loop never waits on the API server.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("orchestrator.controller")

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
EVENT_REASON = "SpendCeilingBinds"


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def pod_namespace() -> str:
    ns = os.environ.get("POD_NAMESPACE")
    if ns:
        return ns
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def event_body(message: str, *, reason: str, event_type: str, namespace: str, pod: str) -> Any:
    """A core/v1 Event about the pod the controller runs in."""
    from kubernetes import client

    now = datetime.now(UTC)
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="orchestrator-spend-ceiling-"),
        involved_object=client.V1ObjectReference(kind="Pod", name=pod, namespace=namespace),
        reason=reason,
        message=message,
        type=event_type,
        source=client.V1EventSource(component="orchestrator-controller"),
        first_timestamp=now,
        last_timestamp=now,
        count=1,
    )


def post_event(api: Any, message: str, *, event_type: str = "Warning") -> Any:
    """Create the Event with a CoreV1Api (`api`); returns the API's answer."""
    namespace = pod_namespace()
    pod = os.environ.get("HOSTNAME", "orchestrator")
    body = event_body(
        message, reason=EVENT_REASON, event_type=event_type, namespace=namespace, pod=pod
    )
    return api.create_namespaced_event(namespace, body)


def _incluster_api() -> Any:
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CoreV1Api()


class CeilingAlerter:
    """Turns decisions into alerts on the ceiling's binding state changes."""

    def __init__(self, api_factory: Any = None):
        self._binding = False
        self._api_factory = api_factory or (_incluster_api if in_cluster() else None)

    def on_decision(
        self, decision: Any, observation: Any = None, policy: Any = None
    ) -> threading.Thread | None:
        binding = bool(decision.ceiling_binding)
        if binding == self._binding:
            return None
        self._binding = binding
        if binding:
            message = "; ".join(decision.alerts) or "spend ceiling binds"
            log.warning("spend ceiling binds: %s", message)
            event_type = "Warning"
        else:
            message = (
                f"spend ceiling ${decision.ceiling_usd_per_hour:,.2f}/hour no longer binds "
                f"(targets cost ${decision.cost_per_hour_usd:,.2f}/hour)"
            )
            log.info(message)
            event_type = "Normal"
        if self._api_factory is None:
            return None
        factory = self._api_factory

        def send() -> None:
            try:
                post_event(factory(), message, event_type=event_type)
            except Exception:
                log.warning("could not post the spend-ceiling Event", exc_info=True)

        thread = threading.Thread(target=send, name="spend-ceiling-event", daemon=True)
        thread.start()
        return thread


class UnplacedAlerter:
    """Logs when a decision starts leaving a family's forecast load unplaced (a warning with
    the share and the binding limit), when the binding limit changes, and when it clears.
    The share is also the `orchestrator_demand_unplaced_share` gauge (per family)."""

    def __init__(self) -> None:
        self._limits: dict[str, tuple[str, ...]] = {}

    def on_decision(self, decision: Any, observation: Any = None, policy: Any = None) -> None:
        now = {f: tuple(u.limited_by) for f, u in decision.unplaced.items()}
        for family, unplaced in decision.unplaced.items():
            if self._limits.get(family) != now[family]:
                log.warning("%s", unplaced.message())
        for family in self._limits.keys() - now.keys():
            log.info("demand of %s is placed again", family)
        self._limits = now
