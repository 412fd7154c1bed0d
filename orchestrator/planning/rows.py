"""Working data of one planning tick: a family's planned-for load and a profile's row."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.catalog.schema import Profile
from orchestrator.concepts import LatencySLO
from orchestrator.planning.capacity import ReplicaCapacity
from orchestrator.planning.types import ProfileObservation


@dataclass(frozen=True)
class Demand:
    """The load one model family is planned for (per second)."""

    rps: float
    input_tps: float
    output_tps: float
    horizon_s: float
    idle: bool

    @property
    def prompt_tokens(self) -> float:
        return self.input_tps / self.rps if self.rps > 0 else 0.0

    @property
    def output_per_request(self) -> float:
        return self.output_tps / self.rps if self.rps > 0 else 256.0


@dataclass
class Row:
    """Working data of one profile during a tick."""

    profile: Profile
    obs: ProfileObservation
    slo: LatencySLO
    cap: ReplicaCapacity
    delivery: float
    prefill_delivery: float  # the factor prefill capacity is planned with (see tick._row)
    lo: int
    hi: int
    headroom: float
    serves: bool
    current: int
    above_since_s: float | None = None
    below_since_s: float | None = None
    back_since_s: float | None = None
    need: float = 0.0
    pressure: str = ""
    floor: int = 0
    zero_hold_s: float = 0.0  # the last replica goes after the load is below it this long

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def family(self) -> str:
        return self.profile.served_model_name

    @property
    def decode_tps(self) -> float:
        return self.cap.output_tps * self.delivery

    @property
    def prefill_tps(self) -> float:
        return self.cap.prefill_tps * self.prefill_delivery

    @property
    def price(self) -> float:
        return self.profile.price_per_replica_hour_usd
