"""Plain-data codec for the lease controller's state (msgpack and JSON friendly).

Rules:

- Output holds only dict (str keys), list, str, int, float, bool and None.
- Every record carries the schema ``version``; decoding refuses versions it does not know.
- Times are stored as the controller's monotonic seconds. A monotonic clock means nothing in
  another process (trio's clock even starts at a random offset), so decoding adds ``shift``
  to every time: ``LeaseController.restore`` chooses it so that the moment of the snapshot
  maps onto the new process's clock.
- Decoding raises :class:`BadSnapshot` for anything malformed, never KeyError or TypeError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import BadSnapshot, BadValue
from .model import (
    Assignment,
    Lease,
    LeaseSpec,
    LeaseState,
    ReleaseReason,
    Rig,
    RigCapabilities,
    RigPhase,
    Selector,
)

__all__ = [
    "SNAPSHOT_VERSION",
    "lease_from_dict",
    "lease_to_dict",
    "rig_from_dict",
    "rig_to_dict",
]

SNAPSHOT_VERSION = 1

T = TypeVar("T")


def rig_to_dict(rig: Rig) -> dict[str, Any]:
    return {
        "rig_id": rig.rig_id,
        "worker": rig.worker,
        "caps": rig.caps.to_dict(),
        "connected": rig.connected,
        "lease_id": rig.lease_id,
        "token": rig.token,
        "resume_by": rig.resume_by,
        "healthy": rig.healthy,
    }


def assignment_to_dict(a: Assignment) -> dict[str, Any]:
    return {
        "rig_id": a.rig_id,
        "gpus": a.gpus,
        "hashrate": a.hashrate,
        "token": a.token,
        "phase": a.phase.value,
        "diverted_at": a.diverted_at,
        "drain_deadline": a.drain_deadline,
        "serving_at": a.serving_at,
        "return_sent_at": a.return_sent_at,
        "return_deadline": a.return_deadline,
        "ended_at": a.ended_at,
        "reason": None if a.reason is None else a.reason.value,
        "jobs": a.jobs,
        "mining_at": a.mining_at,
    }


def lease_to_dict(lease: Lease) -> dict[str, Any]:
    sel = lease.spec.selector
    return {
        "lease_id": lease.lease_id,
        "spec": {
            "selector": {
                "count": sel.count,
                "gpu_model": sel.gpu_model,
                "min_vram_mb": sel.min_vram_mb,
                "model": sel.model,
                "min_count": sel.min_count,
                "rigs": list(sel.rigs),
            },
            "queue": lease.spec.queue,
            "duration_s": lease.spec.duration_s,
            "priority": lease.spec.priority,
            "owner": lease.spec.owner,
            "availability": lease.spec.availability,
        },
        "state": lease.state.value,
        "created_at": lease.created_at,
        "ends_at": lease.ends_at,
        "rigs": [assignment_to_dict(a) for a in lease.rigs],
        "serving_since": lease.serving_since,
        "ended_at": lease.ended_at,
        "outcome": None if lease.outcome is None else lease.outcome.value,
        "note": lease.note,
        "fill_by": lease.fill_by,
    }


class _Reader:
    """Typed field access on one decoded mapping, failing with BadSnapshot."""

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, Mapping):
            raise BadSnapshot(f"{what} must be a mapping, got {type(data).__name__}")
        self._data = data
        self._what = what

    def _get(self, key: str) -> object:
        try:
            return self._data[key]
        except KeyError:
            raise BadSnapshot(f"{self._what} lacks the field {key!r}") from None

    def _typed(self, key: str, types: tuple[type, ...], optional: bool) -> Any:
        value = self._get(key)
        if value is None and optional:
            return None
        # bool is an int: refuse it where a number is expected.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise BadSnapshot(f"{self._what}.{key} has the wrong type {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        return self._typed(key, (str,), False)  # type: ignore[no-any-return]

    def opt_text(self, key: str) -> str | None:
        return self._typed(key, (str,), True)  # type: ignore[no-any-return]

    def integer(self, key: str) -> int:
        return self._typed(key, (int,), False)  # type: ignore[no-any-return]

    def opt_integer(self, key: str) -> int | None:
        return self._typed(key, (int,), True)  # type: ignore[no-any-return]

    def flag(self, key: str) -> bool:
        return self._typed(key, (bool,), False)  # type: ignore[no-any-return]

    def time(self, key: str, shift: float) -> float:
        return float(self._typed(key, (int, float), False)) + shift

    def opt_time(self, key: str, shift: float) -> float | None:
        value = self._typed(key, (int, float), True)
        return None if value is None else float(value) + shift

    def number(self, key: str) -> float:
        return float(self._typed(key, (int, float), False))

    def opt_number(self, key: str) -> float | None:
        """A number or None; a field that is absent (a record written before it existed) is None."""
        if key not in self._data:
            return None
        value = self._typed(key, (int, float), True)
        return None if value is None else float(value)

    def opt_items(self, key: str) -> list[Any]:
        """A list; a field that is absent (a record written before it existed) is empty."""
        return [] if key not in self._data else self.items(key)

    def items(self, key: str) -> list[Any]:
        return self._typed(key, (list, tuple), False)  # type: ignore[no-any-return]

    def sub(self, key: str) -> _Reader:
        return _Reader(self._get(key), f"{self._what}.{key}")

    def raw(self, key: str) -> object:
        return self._get(key)

    def enum(self, key: str, parse: Callable[[str], T], optional: bool = False) -> Any:
        value = self._typed(key, (str,), optional)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            raise BadSnapshot(f"{self._what}.{key}: unknown value {value!r}") from None


def _guard(what: str, build: Callable[[], T]) -> T:
    """Run a constructor, turning its validation errors into BadSnapshot."""
    try:
        return build()
    except BadSnapshot:
        raise
    except BadValue as exc:
        raise BadSnapshot(f"{what}: {exc}") from exc


def rig_from_dict(data: object, shift: float) -> Rig:
    r = _Reader(data, "rig")
    caps_data = r.raw("caps")
    if not isinstance(caps_data, Mapping):
        raise BadSnapshot("rig.caps must be a mapping")
    return _guard(
        "rig",
        lambda: Rig(
            rig_id=r.text("rig_id"),
            worker=r.text("worker"),
            caps=RigCapabilities.from_dict(caps_data),
            connected=r.flag("connected"),
            lease_id=r.opt_text("lease_id"),
            token=r.opt_integer("token"),
            resume_by=r.opt_time("resume_by", shift),
            healthy=r.flag("healthy"),
        ),
    )


def _assignment_from_dict(data: object, shift: float) -> Assignment:
    r = _Reader(data, "assignment")
    return _guard(
        "assignment",
        lambda: Assignment(
            rig_id=r.text("rig_id"),
            gpus=r.integer("gpus"),
            hashrate=r.number("hashrate"),
            token=r.integer("token"),
            phase=r.enum("phase", RigPhase),
            diverted_at=r.time("diverted_at", shift),
            drain_deadline=r.time("drain_deadline", shift),
            serving_at=r.opt_time("serving_at", shift),
            return_sent_at=r.opt_time("return_sent_at", shift),
            return_deadline=r.opt_time("return_deadline", shift),
            ended_at=r.opt_time("ended_at", shift),
            reason=r.enum("reason", ReleaseReason, optional=True),
            jobs=r.integer("jobs"),
            mining_at=r.opt_time("mining_at", shift),
        ),
    )


def lease_from_dict(data: object, shift: float) -> Lease:
    r = _Reader(data, "lease")
    spec = r.sub("spec")
    sel = spec.sub("selector")
    selector = _guard(
        "lease.spec.selector",
        lambda: Selector(
            count=sel.integer("count"),
            gpu_model=sel.opt_text("gpu_model"),
            min_vram_mb=sel.integer("min_vram_mb"),
            model=sel.opt_text("model"),
            min_count=sel.opt_integer("min_count"),
            rigs=tuple(sel.opt_items("rigs")),
        ),
    )
    lease_spec = _guard(
        "lease.spec",
        lambda: LeaseSpec(
            selector=selector,
            queue=spec.text("queue"),
            duration_s=spec.number("duration_s"),
            priority=spec.integer("priority"),
            owner=spec.opt_text("owner"),
            availability=spec.opt_number("availability"),
        ),
    )
    rigs = tuple(_assignment_from_dict(a, shift) for a in r.items("rigs"))
    return _guard(
        "lease",
        lambda: Lease(
            lease_id=r.text("lease_id"),
            spec=lease_spec,
            state=r.enum("state", LeaseState),
            created_at=r.time("created_at", shift),
            ends_at=r.time("ends_at", shift),
            rigs=rigs,
            serving_since=r.opt_time("serving_since", shift),
            ended_at=r.opt_time("ended_at", shift),
            outcome=r.enum("outcome", LeaseState, optional=True),
            note=r.opt_text("note"),
            fill_by=r.opt_time("fill_by", shift),
        ),
    )
