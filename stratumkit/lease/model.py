"""Values of the lease domain: rig capabilities, rigs, selectors, lease specs and leases.

Rules:

- Every value is a frozen dataclass checked in ``__post_init__``. A bad field raises a
  :class:`~stratumkit.lease.errors.BadValue` subclass that names the field, so malformed input
  from a rig or an integrator is refused at the edge, not deep inside the controller.
- Times are seconds on the controller's monotonic clock (the ``now`` passed in), never wall time.
- Units: hashrate in hashes per second, power in watts, VRAM in MiB.
- Sequences are tuples (hashable, immutable); lists given to a constructor are converted.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadCapabilities, BadLeaseSpec, BadSelector, BadValue

__all__ = [
    "ACTIVE_PHASES",
    "GPU",
    "HOLDING_PHASES",
    "LIVE_STATES",
    "MAX_LEASE_S",
    "TERMINAL_STATES",
    "Assignment",
    "Lease",
    "LeaseSpec",
    "LeaseState",
    "ReleaseReason",
    "Rig",
    "RigCapabilities",
    "RigPhase",
    "Selector",
]


#: The longest a lease may run (a year): bounds durations and extensions to sane, finite times.
MAX_LEASE_S = 365 * 86400.0


class LeaseState(enum.Enum):
    """Where a lease is in its life; the transition table is in :mod:`.controller`."""

    REQUESTED = "requested"
    DRAINING = "draining"
    SERVING = "serving"
    RETURNING = "returning"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_live(self) -> bool:
        """True while the lease wants rigs: it may still draft, serve, be extended."""
        return self in LIVE_STATES


LIVE_STATES = frozenset({LeaseState.REQUESTED, LeaseState.DRAINING, LeaseState.SERVING})
TERMINAL_STATES = frozenset({LeaseState.DONE, LeaseState.FAILED, LeaseState.EXPIRED, LeaseState.CANCELLED})


class RigPhase(enum.Enum):
    """Where one rig is within one lease (an :class:`Assignment`)."""

    DRAINING = "draining"  # DivertRig sent; the rig has not yet said it serves
    SERVING = "serving"  # the rig acknowledged and consumes the lease's queue
    RETURNING = "returning"  # ReturnRig sent; the rig has not yet said it mines again
    RETURNED = "returned"  # the rig acknowledged its return: it left the lease cleanly
    LOST = "lost"  # the rig left without acknowledging (disconnect, timeout)


#: Phases in which the assignment counts towards the lease's rig count.
ACTIVE_PHASES = frozenset({RigPhase.DRAINING, RigPhase.SERVING})
#: Phases in which the rig is bound to the lease (its ``lease_id`` points at it).
HOLDING_PHASES = frozenset({RigPhase.DRAINING, RigPhase.SERVING, RigPhase.RETURNING})


class ReleaseReason(enum.Enum):
    """Why a rig stopped serving a lease."""

    LEASE_ENDED = "lease_ended"  # the lease ended (done, expired, cancelled or failed)
    DRAIN_TIMEOUT = "drain_timeout"  # the rig did not start serving within the drain timeout
    DISCONNECTED = "disconnected"  # the rig's connection closed
    AGENT_RETURNED = "agent_returned"  # the agent went back to mining on its own
    NOT_RESUMED = "not_resumed"  # after a restore, the rig did not come back with its token
    RETURN_TIMEOUT = "return_timeout"  # the rig never acknowledged its return
    BACKEND_FAILED = "backend_failed"  # the rig's inference backend kept failing its jobs
    CURTAILED = "curtailed"  # an operator's curtailment overrode the lease and ended it


def _check_int(cls: type[BadValue], name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True as a count is always a caller bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise cls(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise cls(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_float(cls: type[BadValue], name: str, value: object, minimum: float | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise cls(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise cls(f"{name} must be finite, got {number}")
    if minimum is not None and number < minimum:
        raise cls(f"{name} must be >= {minimum}, got {number}")
    return number


def _check_name(cls: type[BadValue], name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise cls(f"{name} must be a non-empty string, got {value!r}")
    return value


def _optional_name(cls: type[BadValue], name: str, value: object) -> str | None:
    return None if value is None else _check_name(cls, name, value)


@dataclass(frozen=True, slots=True)
class GPU:
    """One GPU of a rig, as the agent declares it."""

    model: str
    vram_mb: int

    def __post_init__(self) -> None:
        _check_name(BadCapabilities, "GPU.model", self.model)
        _check_int(BadCapabilities, "GPU.vram_mb", self.vram_mb, 0)

    def matches_model(self, wanted: str) -> bool:
        """Model names compare case-insensitively with runs of spaces collapsed."""
        return _fold(self.model) == _fold(wanted)


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class RigCapabilities:
    """What a rig agent declares when it registers: its GPUs, servable models, mining profile.

    ``hashrate`` (H/s) and ``power_w`` (W) describe the rig while mining; the controller uses
    them to choose which rigs to divert and the accounting to price the hashing foregone.
    """

    gpus: tuple[GPU, ...]
    models: tuple[str, ...]
    hashrate: float
    power_w: float

    def __post_init__(self) -> None:
        gpus = _as_tuple(BadCapabilities, "gpus", self.gpus)
        if not gpus:
            raise BadCapabilities("a leasable rig declares at least one GPU")
        for gpu in gpus:
            if not isinstance(gpu, GPU):
                raise BadCapabilities(f"gpus must hold GPU values, got {type(gpu).__name__}")
        models = _as_tuple(BadCapabilities, "models", self.models)
        for model in models:
            _check_name(BadCapabilities, "models[]", model)
        object.__setattr__(self, "gpus", gpus)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "hashrate", _check_float(BadCapabilities, "hashrate", self.hashrate, 0.0))
        object.__setattr__(self, "power_w", _check_float(BadCapabilities, "power_w", self.power_w, 0.0))

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON and msgpack friendly), the inverse of :meth:`from_dict`."""
        return {
            "gpus": [{"model": g.model, "vram_mb": g.vram_mb} for g in self.gpus],
            "models": list(self.models),
            "hashrate": self.hashrate,
            "power_w": self.power_w,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RigCapabilities:
        """Parse capabilities from plain data (a stratum extension call, a snapshot).

        Raises :class:`BadCapabilities` for anything malformed, never KeyError or TypeError.
        """
        if not isinstance(data, Mapping):
            raise BadCapabilities(f"capabilities must be a mapping, got {type(data).__name__}")
        try:
            raw_gpus = data["gpus"]
            gpus = []
            for raw in _as_tuple(BadCapabilities, "gpus", raw_gpus):
                if not isinstance(raw, Mapping):
                    raise BadCapabilities("each GPU must be a mapping with model and vram_mb")
                gpus.append(GPU(model=raw["model"], vram_mb=raw["vram_mb"]))
            return cls(
                gpus=tuple(gpus),
                models=tuple(data.get("models", ())),
                hashrate=data["hashrate"],
                power_w=data["power_w"],
            )
        except KeyError as exc:
            raise BadCapabilities(f"capabilities lack the field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise BadCapabilities(f"malformed capabilities: {exc}") from None


def _as_tuple(cls: type[BadValue], name: str, value: object) -> tuple[Any, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise cls(f"{name} must be a sequence, got {type(value).__name__}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Rig:
    """A registered rig as the controller sees it.

    ``lease_id`` and ``token`` are set together while the rig is bound to a lease (draining,
    serving or returning); ``token`` is the token of the latest command sent to the rig, which
    its acknowledgements must quote. ``resume_by`` is set only on rigs restored from a snapshot
    that still hold a lease: they have until then to reconnect with their token. ``healthy`` is
    False once its backend was found failing; it is drafted again only after it registers anew.
    """

    rig_id: str
    worker: str
    caps: RigCapabilities
    connected: bool
    lease_id: str | None = None
    token: int | None = None
    resume_by: float | None = None
    healthy: bool = True

    def __post_init__(self) -> None:
        _check_name(BadValue, "rig_id", self.rig_id)
        if not isinstance(self.worker, str):
            raise BadValue(f"worker must be a string, got {type(self.worker).__name__}")
        if not isinstance(self.caps, RigCapabilities):
            raise BadValue("caps must be RigCapabilities")
        if (self.lease_id is None) != (self.token is None):
            raise BadValue("lease_id and token are set together or not at all")

    @property
    def idle(self) -> bool:
        """Connected, healthy and bound to no lease: the only rigs a lease may draft."""
        return self.connected and self.healthy and self.lease_id is None


@dataclass(frozen=True, slots=True)
class Selector:
    """Which rigs a lease wants.

    A rig matches when it has at least one GPU that is of ``gpu_model`` (if given) and has at
    least ``min_vram_mb`` of VRAM, and lists ``model`` among the models it serves (if given).

    ``rigs`` (optional) names the rigs the lease may have: only rigs with one of these ids match
    (and the other conditions still apply), so a lease can lend one particular rig. ``count``
    cannot exceed the rigs named.

    ``count`` rigs are wanted. ``min_count`` (default: ``count``) is how many must be idle at
    creation for the lease to be granted at all: ``min_count < count`` accepts a partial grant
    topped up later, and ``min_count == 0`` lets the lease wait in REQUESTED for rigs to appear.
    """

    count: int
    gpu_model: str | None = None
    min_vram_mb: int = 0
    model: str | None = None
    min_count: int | None = None
    rigs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_int(BadSelector, "count", self.count, 1)
        _optional_name(BadSelector, "gpu_model", self.gpu_model)
        _check_int(BadSelector, "min_vram_mb", self.min_vram_mb, 0)
        _optional_name(BadSelector, "model", self.model)
        if self.min_count is not None:
            _check_int(BadSelector, "min_count", self.min_count, 0)
            if self.min_count > self.count:
                raise BadSelector(f"min_count ({self.min_count}) cannot exceed count ({self.count})")
        rigs = _as_tuple(BadSelector, "rigs", self.rigs)
        for rig_id in rigs:
            _check_name(BadSelector, "rigs[]", rig_id)
        if len(set(rigs)) != len(rigs):
            raise BadSelector(f"rigs names a rig twice: {list(rigs)}")
        if rigs and self.count > len(rigs):
            raise BadSelector(f"count ({self.count}) cannot exceed the rigs named ({len(rigs)})")
        object.__setattr__(self, "rigs", rigs)

    @property
    def required(self) -> int:
        """How many idle matching rigs ``create`` needs to grant the lease."""
        return self.count if self.min_count is None else self.min_count

    def matches(self, caps: RigCapabilities, rig_id: str | None = None) -> bool:
        """Whether a rig with these capabilities (and this id, when the selector names rigs) fits."""
        if self.rigs and rig_id not in self.rigs:
            return False
        if self.model is not None and self.model not in caps.models:
            return False
        return any(
            gpu.vram_mb >= self.min_vram_mb and (self.gpu_model is None or gpu.matches_model(self.gpu_model))
            for gpu in caps.gpus
        )


@dataclass(frozen=True, slots=True)
class LeaseSpec:
    """What an integrator asks for: rigs, the queue they consume, for how long.

    ``priority`` orders leases that are short of rigs when a rig becomes free (higher first);
    it never takes a rig away from a running lease. ``owner`` is an opaque label for the
    integrator (API key name, tenant), carried along for the event stream and billing.
    ``availability`` (0 < a <= 1, optional) is the lease's SLA target: the fraction of its
    rig-seconds the pool promises to serve; rig-seconds lost below it are credited
    (:func:`stratumkit.lease.accounting.sla`).
    """

    selector: Selector
    queue: str
    duration_s: float
    priority: int = 0
    owner: str | None = None
    availability: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.selector, Selector):
            raise BadLeaseSpec("selector must be a Selector")
        _check_name(BadLeaseSpec, "queue", self.queue)
        duration = _check_float(BadLeaseSpec, "duration_s", self.duration_s)
        if not 0 < duration <= MAX_LEASE_S:
            raise BadLeaseSpec(f"duration_s must be positive and at most {MAX_LEASE_S:.0f} s, got {duration}")
        object.__setattr__(self, "duration_s", duration)
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise BadLeaseSpec(f"priority must be an int, got {type(self.priority).__name__}")
        if self.owner is not None and not isinstance(self.owner, str):
            raise BadLeaseSpec(f"owner must be a string, got {type(self.owner).__name__}")
        if self.availability is not None:
            target = _check_float(BadLeaseSpec, "availability", self.availability)
            if not 0 < target <= 1:
                raise BadLeaseSpec(f"availability must be in (0, 1], got {target}")
            object.__setattr__(self, "availability", target)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One rig's stint in one lease, kept after it ends as the lease's record.

    ``gpus`` and ``hashrate`` are copied from the rig's capabilities when it is drafted, so the
    accounting of a finished stint does not change if the rig later re-registers differently.
    ``token`` is the token of the latest command sent to the rig for this stint.
    ``reason`` says why the rig stopped serving (None while it is still active).
    ``mining_at`` is when the pool accepted the rig's first share after it returned: the end of
    the switch back to mining, as the pool sees it.
    """

    rig_id: str
    gpus: int
    hashrate: float
    token: int
    phase: RigPhase
    diverted_at: float
    drain_deadline: float
    serving_at: float | None = None
    return_sent_at: float | None = None
    return_deadline: float | None = None
    ended_at: float | None = None
    reason: ReleaseReason | None = None
    jobs: int = 0
    mining_at: float | None = None

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    @property
    def holding(self) -> bool:
        return self.phase in HOLDING_PHASES


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease and its full record.

    ``ends_at`` is ``created_at + duration_s`` (plus extensions): the lease's time runs from the
    request, so drain time counts against it (it is bounded by the drain timeout and reported
    per rig by the accounting). ``rigs`` lists every stint in draft order, including rigs that
    have left. While RETURNING, ``outcome`` is the terminal state the lease will reach once its
    rigs are back; ``note`` explains a failure.

    ``fill_by`` is set on a pending lease (created with a wait because too few rigs were idle):
    while it is REQUESTED, ``ends_at`` is that deadline; once its rigs are drafted, its time
    starts then and ``ends_at`` becomes that moment plus ``duration_s``.
    """

    lease_id: str
    spec: LeaseSpec
    state: LeaseState
    created_at: float
    ends_at: float
    rigs: tuple[Assignment, ...] = ()
    serving_since: float | None = None
    ended_at: float | None = None
    outcome: LeaseState | None = None
    note: str | None = None
    fill_by: float | None = None

    @property
    def active(self) -> tuple[Assignment, ...]:
        """Stints that count towards the lease's rig count (draining or serving)."""
        return tuple(a for a in self.rigs if a.active)

    @property
    def holding(self) -> tuple[Assignment, ...]:
        """Stints whose rig is still bound to this lease (draining, serving or returning)."""
        return tuple(a for a in self.rigs if a.holding)

    @property
    def short_by(self) -> int:
        """How many rigs the lease lacks, while it is live (0 once it is not)."""
        if not self.state.is_live:
            return 0
        return max(0, self.spec.selector.count - len(self.active))

    def stint(self, rig_id: str) -> Assignment | None:
        """The latest stint of ``rig_id`` in this lease, if the rig ever took part."""
        for assignment in reversed(self.rigs):
            if assignment.rig_id == rig_id:
                return assignment
        return None
