"""The scenario's typed model: links, users and their pacing, phases, the target, the seed. How the
phases will run (`Scenario.planned_phases`) is computed in `loadtests.scenario.timing`.

Pure pydantic: no I/O (the loader is `loadtests.scenario.load`), no Locust, no gevent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gala.contract.errors import InputError
from gala.contract.loopback import is_loopback_url
from loadtests.scenario.timing import PhasePlan, peak_users, planned_phases, user_rates_at

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "scenarios"
DEFAULT_SCENARIO = PACKAGED_DIR / "feb1.yaml"
BUILTIN = "builtin"


# The ranges every number of a scenario must lie in (docs/scenario.md, "Ranges"): wide enough for any
# rehearsal a machine or a cluster can run, narrow enough that no value overflows, divides by zero or
# asks for more memory or time than exists. Floats are finite (no .inf, no .nan) everywhere.
MAX_SECONDS = 7 * 86_400.0         # a phase's start and duration: at most a week
MIN_DURATION_S = 0.1               # a phase shorter than a tenth of a second measures nothing
MAX_USERS = 10_000_000             # users per class per phase (a large swarm runs ~1e6)
MAX_RATE_PER_S = 10_000.0          # one user's actions per second (the checks warn above 50)
MAX_ARRIVAL_RPS = 1e8              # requests/s asked of one link in one phase
MAX_SPAWN_RATE = 1e6               # users started per second
MAX_WEIGHT = 1e6                   # a request's weight, a link's share (relative figures)
MAX_ITEMS = 1_000                  # links, user classes, phases, requests per user
MAX_SEED = 2**63 - 1


def _finite(default: Any = ..., **bounds: Any) -> Any:
    """A pydantic Field for a float that must be finite and within `bounds`."""
    return Field(default, allow_inf_nan=False, **bounds)


class ScenarioError(InputError):
    """A scenario file that cannot be used; the message is `path:LINE: field: what was expected`."""


class _Strict(BaseModel):
    # Unknown keys are typos far more often than intent: reject them with their line.
    model_config = ConfigDict(extra="forbid")


class AdminCall(_Strict):
    """An HTTP call to the target's admin API (bearer token from `TargetSpec.admin_token_env`)."""

    method: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    json_body: Any = Field(default=None, alias="json")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TargetSpec(_Strict):
    url: str = BUILTIN
    config: str | None = None
    inject: list[str] = Field(default_factory=list)
    audit_path: str | None = None
    admin_token_env: str = "GALA_ADMIN_TOKEN"
    after_run: list[AdminCall] = Field(default_factory=list)
    allow_remote_target: bool = False

    @property
    def builtin(self) -> bool:
        return self.url == BUILTIN

    @field_validator("url")
    @classmethod
    def _url_shape(cls, v: str) -> str:
        if v == BUILTIN:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f'expected "builtin" or an http(s) URL like http://127.0.0.1:8080, got {v!r}')
        return v.rstrip("/")

    @model_validator(mode="after")
    def _loopback_only(self) -> "TargetSpec":
        if not self.builtin and not self.allow_remote_target and not is_loopback_url(self.url):
            raise ValueError(
                f"url {self.url!r} is not on loopback; set target.allow_remote_target: true to load a remote system"
            )
        return self


class LinkSpec(_Strict):
    critical: bool = True
    description: str = ""


class ExpectSpec(_Strict):
    """What a declarative request's reply must be to count as a success (else a failure saying why).

    `status`: the accepted status codes (default: any below 400); `json_has`: fields the JSON reply must
    have, dotted for nested objects (`data.id`), a number for a list item (`items.0`).
    """

    status: list[int] | None = Field(default=None, min_length=1)
    json_has: list[str] = Field(default_factory=list)

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, str)) else v

    @field_validator("status")
    @classmethod
    def _codes(cls, v: list[int] | None) -> list[int] | None:
        for code in v or []:
            if not 100 <= code <= 599:
                raise ValueError(f"expected HTTP status codes 100..599, got {code}")
        return v


class FeederSpec(_Strict):
    """Request data from a CSV file (a header row names the columns): each request that uses a `{{column}}`
    (in its path, headers or JSON body) takes the next row (`order: sequential`, cycling; each Locust process
    from its own start) or a random one (`random`), and the placeholder becomes that row's value."""

    csv: str = Field(min_length=1)   # relative to the scenario file
    order: Literal["sequential", "random"] = "sequential"


class RequestSpec(_Strict):
    """One request of the generic declarative user (`loadtests.locust_plugin.users.http:HttpUser`)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(pattern=r"^/")
    link: str
    label: str | None = None
    weight: float = _finite(1.0, gt=0, le=MAX_WEIGHT)
    json_body: Any = Field(default=None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)
    expect: ExpectSpec | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def name(self) -> str:
        """The Locust request name: `<link>:<label>`; the label defaults to the path."""
        return f"{self.link}:{self.label or self.path}"


PacingKind = Literal["poisson", "jittered", "burst", "none"]

# The built-in gala users' module: their `params` are checked against `GalaUserParams` before any load.
GALA_USERS_MODULE = "loadtests.locust_plugin.users.gala"


class GalaUserParams(_Strict):
    """`params` of the built-in users (loadtests/locust_plugin/users/gala.py); a typo is refused, and no
    value can stop a user later (`refresh_every: 0` would divide by zero inside Locust)."""

    friends: int = Field(3, ge=0, le=500)            # friends made at start, among recent users
    refresh_every: int = Field(3, ge=1, le=10_000)   # ShareUser: empty actions between looks at /me
    split_max: int = Field(3, ge=1, le=50)           # ShareUser: friends an envelope is split among
    send_ratio: float = _finite(0.5, ge=0, le=1)     # ChatUser: share of actions that send
    inbox_limit: int = Field(20, ge=1, le=1000)      # ChatUser: messages per inbox page


class UserSpec(_Strict):
    """A user class: a Python class (`class_path` + `params`) or declarative `requests`, plus pacing.

    `rate_per_s` is one user's mean rate of actions; `pacing` how gaps are drawn: `poisson` (exponential
    gaps), `jittered` (1/rate ± jitter), `burst` (`burst_size` actions `burst_gap_s` apart, then a pause
    that keeps the mean rate), `none` (no wait: as fast as the target answers).
    `link_shares`: which share of this user's requests go to each link (known for declarative users from
    their weights; for a class, as the scenario assumes it), used only for intended rates.
    `class_path` may also name a plain Locust `HttpUser`/`FastHttpUser` subclass: gala paces it and
    attributes its requests to links by their name's prefix (`<link>:...`) or by `request_links`
    (request-name prefix -> link; the longest matching prefix wins).
    """

    class_path: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    params: dict[str, Any] = Field(default_factory=dict)
    requests: list[RequestSpec] | None = Field(default=None, max_length=MAX_ITEMS)
    rate_per_s: float = _finite(1.0, gt=0, le=MAX_RATE_PER_S)
    pacing: PacingKind = "poisson"
    jitter: float = _finite(0.5, ge=0, le=1)
    burst_size: int = Field(default=4, ge=1, le=10_000)
    burst_gap_s: float = _finite(0.15, ge=0, le=3600)
    link_shares: dict[str, Annotated[float, _finite(ge=0, le=MAX_WEIGHT)]] = Field(default_factory=dict,
                                                                                   max_length=MAX_ITEMS)
    request_links: dict[str, str] = Field(default_factory=dict)
    feeder: FeederSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "UserSpec":
        if (self.class_path is None) == (self.requests is None):
            raise ValueError("expected exactly one of class_path (a Python user class) or requests (a list)")
        if self.requests is not None and not self.requests:
            raise ValueError("requests: expected at least one request")
        if self.feeder is not None and self.requests is None:
            raise ValueError("feeder: only for declarative users (requests:); a Python class reads its own data")
        if self.pacing == "burst" and self.burst_size * self.burst_gap_s >= self.burst_size / self.rate_per_s:
            raise ValueError(
                f"burst of {self.burst_size} actions {self.burst_gap_s} s apart takes longer than the mean rate "
                f"{self.rate_per_s}/s allows; lower burst_gap_s or rate_per_s"
            )
        return self

    def shares(self) -> dict[str, float]:
        """Share of this user's requests per link (sums to 1), or {} when not known."""
        if self.requests is not None:
            raw: dict[str, float] = {}
            for r in self.requests:
                raw[r.link] = raw.get(r.link, 0.0) + r.weight
        else:
            raw = dict(self.link_shares)
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()} if total > 0 else {}


class PhaseSpec(_Strict):
    """A phase: users per user class (and/or arrival rate per link) for `duration_s` from `start_s`.

    `start_s` None starts the phase when the previous one ends; an earlier start overlaps them.
    `arrival_rps` paces the phase's users so that each named link receives that many requests per
    second in all (the users must be enough to carry it).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][\w.-]*$")
    duration_s: float = _finite(ge=MIN_DURATION_S, le=MAX_SECONDS)
    start_s: float | None = _finite(None, ge=0, le=MAX_SECONDS)
    users: dict[str, Annotated[int, Field(ge=0, le=MAX_USERS)]] = Field(default_factory=dict, max_length=MAX_ITEMS)
    spawn_rate: float | None = _finite(None, gt=0, le=MAX_SPAWN_RATE)
    arrival_rps: dict[str, Annotated[float, _finite(ge=0, le=MAX_ARRIVAL_RPS)]] | None = Field(
        default=None, max_length=MAX_ITEMS)



class Scenario(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][\w.-]*$")
    description: str = ""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    target: TargetSpec = Field(default_factory=TargetSpec)
    links: dict[str, LinkSpec] = Field(max_length=MAX_ITEMS)
    users: dict[str, UserSpec] = Field(max_length=MAX_ITEMS)
    phases: list[PhaseSpec] = Field(min_length=1, max_length=MAX_ITEMS)

    # Set by load_scenario, not by the file.
    _duration_scale: float = PrivateAttr(default=1.0)
    _source_path: Path | None = PrivateAttr(default=None)
    _sha256: str = PrivateAttr(default="")
    _lines: dict = PrivateAttr(default_factory=dict)   # field path -> line in the file (for checks)
    _users_scale: float = PrivateAttr(default=1.0)

    @property
    def duration_scale(self) -> float:
        return self._duration_scale

    @property
    def source_path(self) -> Path | None:
        return self._source_path

    @property
    def sha256(self) -> str:
        """sha256 of the file's bytes, as run.json records it."""
        return self._sha256

    @property
    def lines(self) -> dict:
        """Field path -> line of the file it was read from (empty for a scenario built in code)."""
        return self._lines

    @property
    def users_scale(self) -> float:
        """The factor every phase's user counts were multiplied by (`gala run -u`), 1 when unscaled."""
        return self._users_scale

    @field_validator("links")
    @classmethod
    def _link_names(cls, v: dict[str, LinkSpec]) -> dict[str, LinkSpec]:
        if not v:
            raise ValueError("expected at least one link")
        for k in v:
            if not k or ":" in k or k.startswith("_"):
                raise ValueError(f"link name {k!r}: expected a name without ':' that does not start with '_'")
        return v

    @field_validator("users")
    @classmethod
    def _user_names(cls, v: dict[str, UserSpec]) -> dict[str, UserSpec]:
        if not v:
            raise ValueError("expected at least one user class")
        for k in v:
            if not k.isidentifier():
                raise ValueError(f"user name {k!r}: expected a Python identifier (it becomes a Locust class name)")
        return v

    # ------------------------------------------------------------------ derived views

    @property
    def critical_links(self) -> list[str]:
        return [k for k, v in self.links.items() if v.critical]

    @property
    def total_duration_s(self) -> float:
        return max(p.end_s for p in self.planned_phases())

    def planned_phases(self) -> list[PhasePlan]:
        """The phases as they will run: times after duration_scale, users, intended requests/s per link."""
        return planned_phases(self)

    def user_rates_at(self, t_s: float) -> dict[str, float]:
        """Per-user action rate of each user class at run time t_s (the most recently started phase wins)."""
        return user_rates_at(self, t_s)

    @property
    def peak_users(self) -> int:
        """The most users running at once (overlapping phases add up)."""
        return peak_users(self.planned_phases())

    def link_of(self, request_name: str) -> str:
        """The link of a Locust request name: `<link>:<label>` (text before the first ':') when that is a
        link; else the longest `request_links` prefix of any user that matches; else the text before ':'."""
        head = request_name.split(":", 1)[0]
        if head in self.links:
            return head
        best = ""
        for u in self.users.values():
            for prefix in u.request_links:
                if request_name.startswith(prefix) and len(prefix) > len(best):
                    best = prefix
        if best:
            return next(u.request_links[best] for u in self.users.values() if best in u.request_links)
        return head
