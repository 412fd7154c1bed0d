"""The decision log: each routing decision and the inputs that made it, by request id, shared
by every ingress replica (SQLite or PostgreSQL); the simulator replays traffic from it."""

from orchestrator.decisionlog.records import DecisionEntry, DecisionInputs, ProfileSeen, Retention
from orchestrator.decisionlog.store import DecisionLog, DecisionPut

__all__ = [
    "DecisionEntry",
    "DecisionInputs",
    "DecisionLog",
    "DecisionPut",
    "ProfileSeen",
    "Retention",
]
