"""The target's configuration: drop schedule, pools, odds, caps and limits, validated by pydantic.

Defaults are scaled down so that a ~90 s rehearsal with a few hundred simulated users exercises
everything: drops open within 2 s and repeat, some pools run empty, 敬业 hits its cap, users
complete all five cards, and envelopes exist to split. `configs/gala-2016.yaml` holds the night's
real figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gala.contract.errors import InputError
from gala.contract.yamlfile import load_marked, validate_marked

CARD_KINDS: tuple[str, ...] = ("爱国", "敬业", "富强", "和谐", "友善")
CardKind = Literal["爱国", "敬业", "富强", "和谐", "友善"]
# Links as they appear in the `link` label of /metrics and in --inject.
LINKS: tuple[str, ...] = ("setup", "grab", "share", "chat", "admin")
Link = Literal["setup", "grab", "share", "chat", "admin"]
MAX_ENVELOPE_FEN = 880
# Ranges: every float finite; times within a week; money within 10^15 fen (10 trillion yuan).
WEEK_S = 7 * 86_400.0
MAX_FEN = 10**15


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DropSchedule(_Strict):
    """When drops open and how much each gives away."""

    first_at_s: float = Field(1.0, ge=0, le=WEEK_S, allow_inf_nan=False,
                              description="seconds after start when the first drop opens")
    duration_s: float = Field(5.0, gt=0, le=WEEK_S, allow_inf_nan=False, description="how long each drop window stays open")
    # at least 0.5 s: an idle hour then opens at most 7,200 slots, which the next grab materialises at once
    interval_s: float = Field(6.0, ge=0.5, le=WEEK_S, allow_inf_nan=False,
                              description="seconds from one drop's opening to the next")
    count: int | None = Field(None, ge=0, le=1_000_000, description="number of drops; null repeats for as long as the target runs")
    # A list is cycled drop by drop. Short, frequent drops mean that even a rehearsal shortened to
    # 20 s sees pools run empty and sharers holding envelopes to split (tests/test_target_defaults.py).
    pool_fen: list[int] = Field(default_factory=lambda: [30_000, 60_000], min_length=1, max_length=10_000)

    @field_validator("pool_fen", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("pool_fen")
    @classmethod
    def _non_negative(cls, v: list[int]) -> list[int]:
        if any(not 0 <= p <= MAX_FEN for p in v):
            raise ValueError(f"every pool must be within 0..{MAX_FEN} fen")
        return v

    @model_validator(mode="after")
    def _window_fits(self) -> "DropSchedule":
        if self.duration_s > self.interval_s:
            raise ValueError(f"duration_s ({self.duration_s}) must be <= interval_s ({self.interval_s}) so windows do not overlap")
        return self


class LinkFaults(_Strict):
    """Faults injected on one link, applied before the handler touches state."""

    latency_ms: float = Field(0.0, ge=0, le=600_000, allow_inf_nan=False)
    errors: float = Field(0.0, ge=0, le=1, allow_inf_nan=False,
                          description="ratio of requests answered 503 without a state change")
    stall_s: float = Field(0.0, ge=0, le=3600, allow_inf_nan=False, description="requests hang this long, then get 503")

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.errors or self.stall_s)


def _default_card_odds() -> dict[str, float]:
    return {"爱国": 0.1, "敬业": 0.05, "富强": 0.1, "和谐": 0.1, "友善": 0.1}


class TargetConfig(_Strict):
    """Everything the target can be told; every field has a rehearsal-sized default."""

    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="random seed for amounts and odds; null = fresh each start")
    drops: DropSchedule = Field(default_factory=DropSchedule)
    max_envelope_fen: int = Field(MAX_ENVELOPE_FEN, ge=1, le=MAX_ENVELOPE_FEN)
    envelope_odds: float = Field(0.2, ge=0, le=1, allow_inf_nan=False, description="chance a tap tries for an envelope")
    card_odds: dict[CardKind, float] = Field(default_factory=_default_card_odds)
    card_caps: dict[CardKind, int] = Field(default_factory=lambda: {"敬业": 150})
    blessing_pool_fen: int = Field(2_150_000, ge=0, le=MAX_FEN)
    max_body_bytes: int = Field(64 * 1024, ge=256, le=16 * 1024 * 1024)
    max_chat_chars: int = Field(500, ge=1, le=100_000)
    max_split_ways: int = Field(50, ge=1, le=10_000)
    max_inbox_limit: int = Field(1000, ge=1, le=100_000)
    faults: dict[Link, LinkFaults] = Field(default_factory=dict)
    # Half-sent requests must not pin a process (slowloris): see guard.py.
    idle_timeout_s: float = Field(15.0, gt=0, le=3600, allow_inf_nan=False, description="a connection must complete a request's headers "
                                  "within this many seconds of opening or of its last answer, else it is closed")
    body_timeout_s: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False, description="a request's body must arrive within this many seconds (else 408)")
    max_connections: int = Field(4096, ge=8, le=1_000_000, description="open connections per process; at the cap the "
                                 "oldest idle or half-sent one is closed (also held below the process's open-file limit)")

    @field_validator("card_odds")
    @classmethod
    def _odds_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: p for k, p in v.items() if not 0 <= p <= 1}
        if bad:
            raise ValueError(f"each card odd must be within [0, 1], got {bad}")
        return v

    @field_validator("card_caps")
    @classmethod
    def _caps_non_negative(cls, v: dict[str, int]) -> dict[str, int]:
        if any(not 0 <= c <= MAX_FEN for c in v.values()):
            raise ValueError(f"card caps must be within 0..{MAX_FEN}")
        return v

    @model_validator(mode="after")
    def _odds_sum(self) -> "TargetConfig":
        total = self.envelope_odds + sum(self.card_odds.values())
        if total > 1 + 1e-9:
            raise ValueError(f"envelope_odds + card_odds add up to {total:.4f}; a tap's outcomes must add up to <= 1")
        return self


def load_config(path: str | Path | None) -> TargetConfig:
    """Read and validate a YAML config; None gives the defaults. Raises InputError `FILE:LINE: field: expected ...`."""
    if path is None:
        return TargetConfig()
    p = Path(path)
    raw, lines = load_marked(p, "target config")
    if raw is None:
        raise InputError(f"{p}:1: (top level): the file is empty; expected a mapping of target settings "
                         "(see loadtests/target/configs/gala-2016.yaml)")
    if not isinstance(raw, dict):
        raise InputError(f"{p}:1: (top level): expected a mapping of target settings, got {type(raw).__name__}")
    return validate_marked(TargetConfig, raw, lines, str(p))
