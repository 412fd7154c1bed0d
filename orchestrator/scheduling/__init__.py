"""Scheduling by predicted work: the order requests wait in, at the ingress and in the engines.

Pure (plain values, an injected clock): the server's ingress queue and the simulator's run the
same code. `key.py` is the order (tenant priority class, deadline, predicted work aged by a
bound), `fairness.py` the shares between tenants of one class (a virtual token counter),
`queue.py` the bounded per-tenant wait queue, `replicas.py` the replica choice inside a
profile (least predicted outstanding tokens, prefix affinity as a score).
"""

from orchestrator.scheduling.fairness import VirtualTokenCounter
from orchestrator.scheduling.key import OrderKey, engine_priority, order_key
from orchestrator.scheduling.queue import Enqueued, QueueRefusal, Waiting, WaitQueue
from orchestrator.scheduling.replicas import ReplicaLoad, choose_replica
from orchestrator.scheduling.settings import SchedulingSettings, TenantShare

__all__ = [
    "Enqueued",
    "OrderKey",
    "QueueRefusal",
    "ReplicaLoad",
    "SchedulingSettings",
    "TenantShare",
    "VirtualTokenCounter",
    "WaitQueue",
    "Waiting",
    "choose_replica",
    "engine_priority",
    "order_key",
]
