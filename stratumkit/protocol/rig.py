"""The stratumkit rig extension as types: one frozen dataclass per message of the lease plane.

The extension rides on a rig's own stratum connection. Plain miners never see it: the pool sends
lease messages only to connections that called ``stratumkit.rig.register``. Both the pool (the
lease service) and the rig agent build and read every message through these types.

==========================  ================  ==================================================
method                      type              params -> result
==========================  ================  ==================================================
Rig -> pool (requests)
stratumkit.rig.register     RigRegister       [{rig_id?, gpus: [{model, vram_mb}], models?,
                                              hashrate, power_w?, resume_token?, secret?}]
                                              -> RegisterReply {"rig_id"}
stratumkit.lease.serving    LeaseServing      [token]: stopped mining, backend ready -> true
stratumkit.lease.returned   LeaseReturned     [token]: jobs released, ready to mine -> true
stratumkit.job.claim        JobClaim          [token, max_jobs?=1, visibility_timeout?=30,
                                              wait_s?=0] -> ClaimReply [{job_id, payload,
                                              deliveries}]
stratumkit.job.heartbeat    JobHeartbeat      [job_id]: keep a claimed job invisible -> true
stratumkit.job.result       JobResult         [job_id, result object] -> true if recorded
stratumkit.job.release      JobRelease        [job_id, cause?]: give a claimed job back (cause:
                                              why the backend could not run it) -> true
Pool -> rig (notifications)
stratumkit.lease.divert     LeaseDivert       [{lease_id, token, queue, ends_at (unix time)}]
stratumkit.lease.return     LeaseReturn       [{lease_id, token}]
stratumkit.rig.curtail      RigCurtail        [curtailed]: true = stop hashing (power is shed),
                                              false = hash again on the fresh work that follows
==========================  ================  ==================================================

``token`` fences every acknowledgement: it is the token of the latest divert or return the pool
sent the rig, and a stale one is refused. ``resume_token`` is that token quoted again when the
agent registers on a new connection, so that a pool restored from a snapshot lets the rig resume
its stint instead of ending it. ``secret`` is the rig's own or its fleet's secret, when the pool
wants one before it lets a connection register (it is never echoed in an error).

Rules:

- The constructor validates every field and raises :class:`RigMessageError` (a ValueError)
  naming the method and the field; ``from_params`` only unpacks the wire shape (list length,
  object keys) and then builds, so a message is checked in exactly one place.
- ``from_params(m.to_params()) == m``, also through JSON; ``to_params`` returns plain JSON data
  and always sends every positional param, while ``from_params`` accepts the documented defaults.
- Numbers: a bool is never a number; floats must be finite; every count, size and time has a
  bound, so a rig cannot make the pool hold absurd values.
- Objects are closed: an unknown key is refused (a pool and its agents are upgraded together).
- ``METHOD`` on each type is the one place a method name is spelled. Replies that are not plain
  booleans have ``from_result`` / ``to_result`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn, Self

__all__ = [
    "MAX_CAUSE",
    "MAX_CLAIM_JOBS",
    "MAX_CLAIM_WAIT_S",
    "MAX_SECRET",
    "MAX_TOKEN",
    "MAX_VISIBILITY_S",
    "NOTIFICATIONS",
    "REQUESTS",
    "ClaimReply",
    "GpuInfo",
    "GrantedJob",
    "JobClaim",
    "JobHeartbeat",
    "JobRelease",
    "JobResult",
    "LeaseDivert",
    "LeaseReturn",
    "LeaseReturned",
    "LeaseServing",
    "RegisterReply",
    "RigCurtail",
    "RigMessageError",
    "RigNotification",
    "RigRegister",
    "RigRequest",
]

#: Tokens are positive ints below this (the controller's counter never gets near it).
MAX_TOKEN = 2**63 - 1
#: The most jobs one claim may take.
MAX_CLAIM_JOBS = 64
#: The longest a claim may wait for a job to appear (the pool answers at most this late).
MAX_CLAIM_WAIT_S = 30.0
#: The longest visibility timeout a claim may ask for (the queue engines' own bound: a week).
MAX_VISIBILITY_S = 7 * 24 * 3600.0
MAX_RIG_ID = 128
MAX_SECRET = 256
MAX_CAUSE = 1000  # a backend's error message, as a rig reports it
MAX_NAME = 200  # job ids, lease ids, queue names, model names
MAX_GPUS = 64
MAX_MODELS = 256
MAX_VRAM_MB = 2**24  # 16 TiB
MAX_HASHRATE = 1e18  # H/s: a thousand times the largest ASIC farm that fits on one connection
MAX_POWER_W = 1e6
MAX_UNIX_TIME = 1e11  # the year 5138
MAX_DELIVERIES = 2**31 - 1


class RigMessageError(ValueError):
    """A rig-extension message (or one of its fields) is malformed; the text names the field."""


# ---------------------------------------------------------------------------- field checks


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(method: str, name: str, problem: str, value: object) -> NoReturn:
    raise RigMessageError(f"{method}: {name} {problem}, got {_show(value)}")


def _text(method: str, name: str, value: object, max_len: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        _fail(method, name, f"must be a non-empty string of at most {max_len} characters", value)
    return value


def _int(method: str, name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(method, name, f"must be an integer in {low}..{high}", value)
    return value


def _number(method: str, name: str, value: object, low: float, high: float, *, above_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(method, name, "must be a number", value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        _fail(method, name, f"must be at most {high:g}", value)
    if not math.isfinite(number) or not (low < number if above_low else low <= number) or number > high:
        bound = f"({low:g}, {high:g}]" if above_low else f"[{low:g}, {high:g}]"
        _fail(method, name, f"must be a finite number in {bound}", value)
    return number


def _token(method: str, name: str, value: object) -> int:
    return _int(method, name, value, 1, MAX_TOKEN)


def _json_object(method: str, name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        _fail(method, name, "must be a JSON object", value)
    return value


def _params(method: str, params: object, low: int, high: int) -> list[Any]:
    """The positional params, a list of `low`..`high` items."""
    if not isinstance(params, list | tuple) or not low <= len(params) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        _fail(method, "params", f"must be a list of {want} item(s)", params)
    return list(params)


def _fields(
    method: str, name: str, value: object, required: frozenset[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A closed JSON object: every required key, no unknown one."""
    obj = _json_object(method, name, value)
    missing = sorted(required - obj.keys())
    if missing:
        _fail(method, name, f"lacks the field(s) {', '.join(missing)}", value)
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        _fail(method, name, f"has unknown field(s) {', '.join(unknown)}", value)
    return obj


def _sequence(method: str, name: str, value: object, max_len: int) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple) or len(value) > max_len:
        _fail(method, name, f"must be a list of at most {max_len} items", value)
    return tuple(value)


# ---------------------------------------------------------------------------- registration


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One GPU as the agent declares it (VRAM in MiB)."""

    model: str
    vram_mb: int

    def __post_init__(self) -> None:
        _text(RigRegister.METHOD, "gpus[].model", self.model)
        _int(RigRegister.METHOD, "gpus[].vram_mb", self.vram_mb, 0, MAX_VRAM_MB)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "vram_mb": self.vram_mb}

    @classmethod
    def from_dict(cls, data: object) -> Self:
        obj = _fields(RigRegister.METHOD, "gpus[]", data, frozenset({"model", "vram_mb"}))
        return cls(obj["model"], obj["vram_mb"])


_REGISTER_REQUIRED = frozenset({"gpus", "hashrate"})
_REGISTER_OPTIONAL = frozenset({"rig_id", "models", "power_w", "resume_token", "secret"})


@dataclass(frozen=True, slots=True)
class RigRegister:
    """A rig agent opts into the lease plane and declares what it has.

    ``rig_id`` defaults (on the pool) to the authorized worker name. ``hashrate`` (H/s) and
    ``power_w`` describe the rig while mining. ``resume_token`` is the token of the last divert or
    return the agent saw on an earlier connection, if it still holds that stint. ``secret`` is
    the rig's or its fleet's secret, for a pool that authenticates rigs (kept out of ``repr``).
    """

    METHOD: ClassVar[str] = "stratumkit.rig.register"

    gpus: tuple[GpuInfo, ...]
    hashrate: float
    rig_id: str | None = None
    models: tuple[str, ...] = ()
    power_w: float = 0.0
    resume_token: int | None = None
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        m = self.METHOD
        if self.secret is not None and (not isinstance(self.secret, str) or not 1 <= len(self.secret) <= MAX_SECRET):
            raise RigMessageError(f"{m}: secret must be a string of 1..{MAX_SECRET} characters")  # value not shown
        if not isinstance(self.gpus, tuple) or len(self.gpus) > MAX_GPUS:
            _fail(m, "gpus", f"must be a tuple of at most {MAX_GPUS} GPUs", self.gpus)
        if not all(isinstance(gpu, GpuInfo) for gpu in self.gpus):
            _fail(m, "gpus", "must hold GpuInfo values", self.gpus)
        if not isinstance(self.models, tuple) or len(self.models) > MAX_MODELS:
            _fail(m, "models", f"must be a tuple of at most {MAX_MODELS} names", self.models)
        for model in self.models:
            _text(m, "models[]", model)
        if self.rig_id is not None:
            _text(m, "rig_id", self.rig_id, MAX_RIG_ID)
        object.__setattr__(self, "hashrate", _number(m, "hashrate", self.hashrate, 0.0, MAX_HASHRATE))
        object.__setattr__(self, "power_w", _number(m, "power_w", self.power_w, 0.0, MAX_POWER_W))
        if self.resume_token is not None:
            _token(m, "resume_token", self.resume_token)

    def to_params(self) -> list[Any]:
        info: dict[str, Any] = {
            "gpus": [gpu.to_dict() for gpu in self.gpus],
            "models": list(self.models),
            "hashrate": self.hashrate,
            "power_w": self.power_w,
        }
        if self.rig_id is not None:
            info["rig_id"] = self.rig_id
        if self.resume_token is not None:
            info["resume_token"] = self.resume_token
        if self.secret is not None:
            info["secret"] = self.secret
        return [info]

    @classmethod
    def from_params(cls, params: object) -> Self:
        m = cls.METHOD
        (raw,) = _params(m, params, 1, 1)
        info = _fields(m, "params[0]", raw, _REGISTER_REQUIRED, _REGISTER_OPTIONAL)
        gpus = tuple(GpuInfo.from_dict(gpu) for gpu in _sequence(m, "gpus", info["gpus"], MAX_GPUS))
        return cls(
            gpus=gpus,
            hashrate=info["hashrate"],
            rig_id=info.get("rig_id"),
            models=_sequence(m, "models", info.get("models", []), MAX_MODELS),
            power_w=info.get("power_w", 0.0),
            resume_token=info.get("resume_token"),
            secret=info.get("secret"),
        )


@dataclass(frozen=True, slots=True)
class RegisterReply:
    """The pool's answer to a registration: the rig id it goes by."""

    METHOD: ClassVar[str] = RigRegister.METHOD

    rig_id: str

    def __post_init__(self) -> None:
        _text(self.METHOD, "result.rig_id", self.rig_id, MAX_RIG_ID)

    def to_result(self) -> dict[str, Any]:
        return {"rig_id": self.rig_id}

    @classmethod
    def from_result(cls, result: object) -> Self:
        obj = _fields(cls.METHOD, "result", result, frozenset({"rig_id"}))
        return cls(obj["rig_id"])


# ---------------------------------------------------------------------------- acknowledgements


@dataclass(frozen=True, slots=True)
class _TokenAck:
    token: int

    METHOD: ClassVar[str]

    def __post_init__(self) -> None:
        _token(self.METHOD, "token", self.token)

    def to_params(self) -> list[Any]:
        return [self.token]

    @classmethod
    def from_params(cls, params: object) -> Self:
        (token,) = _params(cls.METHOD, params, 1, 1)
        return cls(token)


@dataclass(frozen=True, slots=True)
class LeaseServing(_TokenAck):
    """The agent stopped mining and serves the lease its divert ``token`` named."""

    METHOD: ClassVar[str] = "stratumkit.lease.serving"


@dataclass(frozen=True, slots=True)
class LeaseReturned(_TokenAck):
    """The agent released its jobs and mines again (quoting the return's token; quoting the
    divert's token means it gave the lease up by itself)."""

    METHOD: ClassVar[str] = "stratumkit.lease.returned"


# ---------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class JobClaim:
    """Take up to ``max_jobs`` jobs of the lease ``token`` names; with ``wait_s`` > 0 the pool
    answers as soon as a job appears, or with no job after ``wait_s``."""

    METHOD: ClassVar[str] = "stratumkit.job.claim"

    token: int
    max_jobs: int = 1
    visibility_timeout: float = 30.0
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        m = self.METHOD
        _token(m, "token", self.token)
        _int(m, "max_jobs", self.max_jobs, 1, MAX_CLAIM_JOBS)
        visibility = _number(m, "visibility_timeout", self.visibility_timeout, 0.0, MAX_VISIBILITY_S, above_low=True)
        object.__setattr__(self, "visibility_timeout", visibility)
        object.__setattr__(self, "wait_s", _number(m, "wait_s", self.wait_s, 0.0, MAX_CLAIM_WAIT_S))

    def to_params(self) -> list[Any]:
        return [self.token, self.max_jobs, self.visibility_timeout, self.wait_s]

    @classmethod
    def from_params(cls, params: object) -> Self:
        return cls(*_params(cls.METHOD, params, 1, 4))


@dataclass(frozen=True, slots=True)
class GrantedJob:
    """One claimed job as the rig receives it (``deliveries`` counts this delivery)."""

    job_id: str
    payload: dict[str, Any] = field(hash=False)
    deliveries: int = 1

    def __post_init__(self) -> None:
        m = JobClaim.METHOD
        _text(m, "result[].job_id", self.job_id)
        _json_object(m, "result[].payload", self.payload)
        _int(m, "result[].deliveries", self.deliveries, 1, MAX_DELIVERIES)

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "payload": self.payload, "deliveries": self.deliveries}

    @classmethod
    def from_dict(cls, data: object) -> Self:
        obj = _fields(JobClaim.METHOD, "result[]", data, frozenset({"job_id", "payload", "deliveries"}))
        return cls(obj["job_id"], obj["payload"], obj["deliveries"])


@dataclass(frozen=True, slots=True)
class ClaimReply:
    """The jobs a claim took (possibly none)."""

    METHOD: ClassVar[str] = JobClaim.METHOD

    jobs: tuple[GrantedJob, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.jobs, tuple) or len(self.jobs) > MAX_CLAIM_JOBS:
            _fail(self.METHOD, "result", f"must be a tuple of at most {MAX_CLAIM_JOBS} jobs", self.jobs)
        if not all(isinstance(job, GrantedJob) for job in self.jobs):
            _fail(self.METHOD, "result", "must hold GrantedJob values", self.jobs)

    def to_result(self) -> list[dict[str, Any]]:
        return [job.to_dict() for job in self.jobs]

    @classmethod
    def from_result(cls, result: object) -> Self:
        raw = _sequence(cls.METHOD, "result", result, MAX_CLAIM_JOBS)
        return cls(tuple(GrantedJob.from_dict(job) for job in raw))


@dataclass(frozen=True, slots=True)
class _JobRef:
    job_id: str

    METHOD: ClassVar[str]

    def __post_init__(self) -> None:
        _text(self.METHOD, "job_id", self.job_id)

    def to_params(self) -> list[Any]:
        return [self.job_id]

    @classmethod
    def from_params(cls, params: object) -> Self:
        (job_id,) = _params(cls.METHOD, params, 1, 1)
        return cls(job_id)


@dataclass(frozen=True, slots=True)
class JobHeartbeat(_JobRef):
    """Keep a claimed job invisible to other rigs for another visibility timeout."""

    METHOD: ClassVar[str] = "stratumkit.job.heartbeat"


@dataclass(frozen=True, slots=True)
class JobRelease:
    """Give a claimed job back unfinished (another rig may take it). ``cause`` says why the
    backend could not run it; a release while serving counts against the rig's health."""

    METHOD: ClassVar[str] = "stratumkit.job.release"

    job_id: str
    cause: str | None = None

    def __post_init__(self) -> None:
        _text(self.METHOD, "job_id", self.job_id)
        if self.cause is not None:
            _text(self.METHOD, "cause", self.cause, MAX_CAUSE)

    def to_params(self) -> list[Any]:
        return [self.job_id, self.cause]

    @classmethod
    def from_params(cls, params: object) -> Self:
        job_id, *rest = _params(cls.METHOD, params, 1, 2)
        return cls(job_id, rest[0] if rest else None)


@dataclass(frozen=True, slots=True)
class JobResult:
    """A claimed job's result (a JSON object); the reply says whether it was recorded."""

    METHOD: ClassVar[str] = "stratumkit.job.result"

    job_id: str
    result: dict[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        _text(self.METHOD, "job_id", self.job_id)
        _json_object(self.METHOD, "result", self.result)

    def to_params(self) -> list[Any]:
        return [self.job_id, self.result]

    @classmethod
    def from_params(cls, params: object) -> Self:
        job_id, result = _params(cls.METHOD, params, 2, 2)
        return cls(job_id, result)


# ---------------------------------------------------------------------------- notifications


@dataclass(frozen=True, slots=True)
class LeaseDivert:
    """Stop mining and serve ``queue`` until told to return; ``ends_at`` (unix time) is advisory."""

    METHOD: ClassVar[str] = "stratumkit.lease.divert"

    lease_id: str
    token: int
    queue: str
    ends_at: float

    def __post_init__(self) -> None:
        m = self.METHOD
        _text(m, "lease_id", self.lease_id)
        _token(m, "token", self.token)
        _text(m, "queue", self.queue)
        object.__setattr__(self, "ends_at", _number(m, "ends_at", self.ends_at, 0.0, MAX_UNIX_TIME))

    def to_params(self) -> list[Any]:
        return [{"lease_id": self.lease_id, "token": self.token, "queue": self.queue, "ends_at": self.ends_at}]

    @classmethod
    def from_params(cls, params: object) -> Self:
        (raw,) = _params(cls.METHOD, params, 1, 1)
        obj = _fields(cls.METHOD, "params[0]", raw, frozenset({"lease_id", "token", "queue", "ends_at"}))
        return cls(obj["lease_id"], obj["token"], obj["queue"], obj["ends_at"])


@dataclass(frozen=True, slots=True)
class LeaseReturn:
    """Stop serving, release unfinished jobs, acknowledge with ``token`` and mine again."""

    METHOD: ClassVar[str] = "stratumkit.lease.return"

    lease_id: str
    token: int

    def __post_init__(self) -> None:
        _text(self.METHOD, "lease_id", self.lease_id)
        _token(self.METHOD, "token", self.token)

    def to_params(self) -> list[Any]:
        return [{"lease_id": self.lease_id, "token": self.token}]

    @classmethod
    def from_params(cls, params: object) -> Self:
        (raw,) = _params(cls.METHOD, params, 1, 1)
        obj = _fields(cls.METHOD, "params[0]", raw, frozenset({"lease_id", "token"}))
        return cls(obj["lease_id"], obj["token"])


@dataclass(frozen=True, slots=True)
class RigCurtail:
    """Power control, outside any lease (no token): stop hashing, or hash again."""

    METHOD: ClassVar[str] = "stratumkit.rig.curtail"

    curtailed: bool

    def __post_init__(self) -> None:
        if type(self.curtailed) is not bool:
            _fail(self.METHOD, "curtailed", "must be true or false", self.curtailed)

    def to_params(self) -> list[Any]:
        return [self.curtailed]

    @classmethod
    def from_params(cls, params: object) -> Self:
        (curtailed,) = _params(cls.METHOD, params, 1, 1)
        return cls(curtailed)


RigRequest = RigRegister | LeaseServing | LeaseReturned | JobClaim | JobHeartbeat | JobResult | JobRelease
RigNotification = LeaseDivert | LeaseReturn

#: Rig -> pool request types by method.
REQUESTS: Mapping[str, type[RigRequest]] = {
    RigRegister.METHOD: RigRegister,
    LeaseServing.METHOD: LeaseServing,
    LeaseReturned.METHOD: LeaseReturned,
    JobClaim.METHOD: JobClaim,
    JobHeartbeat.METHOD: JobHeartbeat,
    JobResult.METHOD: JobResult,
    JobRelease.METHOD: JobRelease,
}
#: Pool -> rig notification types by method.
NOTIFICATIONS: Mapping[str, type[RigNotification]] = {LeaseDivert.METHOD: LeaseDivert, LeaseReturn.METHOD: LeaseReturn}
