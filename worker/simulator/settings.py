"""Settings of one simulator instance: latency, models, rate limits and injected faults."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.simulator.faults import FAULT_KINDS, check_fault_rates


def _rate_field(description: str) -> Any:
    return Field(default=0.0, ge=0, le=1, description=description)


class SimulatorSettings(BaseModel):
    """Behaviour of one simulator instance."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(
        default=0.0,
        ge=0,
        description="Delay added to the response of each admitted request, in ms.",
    )
    models: list[str] | None = Field(
        default=None,
        description="Model names that requests may use. None accepts any name.",
    )
    request_log_size: int = Field(
        default=100_000,
        gt=0,
        description="Maximum number of request log entries, beyond which the oldest are dropped.",
    )

    rpm: int | None = Field(
        default=None, gt=0, description="Requests per minute. None means unlimited."
    )
    tpm: int | None = Field(
        default=None, gt=0, description="Tokens per minute. None means unlimited."
    )
    request_burst_s: float = Field(
        default=1.0,
        gt=0,
        description="Capacity of the request bucket in seconds of RPM, and at least 1 request.",
    )
    token_burst_s: float = Field(
        default=60.0, gt=0, description="Capacity of the token bucket in seconds of TPM."
    )

    fault_seed: int = Field(default=0, description="Seed of the RNG that draws faults.")
    server_error_rate: float = _rate_field("Share of admitted requests that get HTTP 500 or 503.")
    slow_rate: float = _rate_field("Share of admitted requests delayed by slow_ms.")
    slow_ms: float = Field(
        default=3000.0, ge=0, description="Extra delay of a slow response, in ms."
    )
    stall_rate: float = _rate_field("Share of admitted requests delayed by stall_s.")
    stall_s: float = Field(
        default=120.0, ge=0, description="Time a stalled request holds the connection, in s."
    )
    error_in_200_rate: float = _rate_field("Share of admitted requests that get HTTP 200 "
                                           "with an error body and no choices.")
    truncated_rate: float = _rate_field("Share of admitted requests whose JSON is cut mid-way.")
    malformed_json_rate: float = _rate_field("Share of admitted requests that get prose "
                                             "in place of JSON.")
    schema_violation_rate: float = _rate_field("Share of admitted requests that get JSON "
                                               "breaking the output contract.")

    @model_validator(mode="after")
    def _check_fault_rate_sum(self) -> SimulatorSettings:
        check_fault_rates(self.fault_rates())
        return self

    def fault_rates(self) -> dict[str, float]:
        """Return the rate of each fault kind, keyed by the kind without `_rate`."""
        return {kind: float(getattr(self, f"{kind}_rate")) for kind in FAULT_KINDS}
