"""What every block of the policy schema shares: a strict, frozen pydantic base and the one way
to say why a value is invalid.

Invariant: every policy model derives from `Strict`, so an unknown field anywhere in a policy
file is an error, and a validated block cannot be changed afterwards.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"  # tenant names: DNS labels


def invalid(reason: str) -> PydanticCustomError:
    """A validation error whose message is exactly `reason` (no "Value error, " prefix)."""
    return PydanticCustomError("policy_invalid", "{reason}", {"reason": reason})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
