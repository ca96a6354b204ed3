"""Status conditions (`stowage.api.common.Condition`), as pure functions over their wire form.

A reconciler states the conditions it wants (type, status, reason, message); `merge` stamps them
with `observedGeneration` and keeps `lastTransitionTime` while the status stays the same;
`transitions` tells which of them changed, each worth an Event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stowage.api.common import Condition, ConditionStatus

WireCondition = dict[str, Any]

READY = "Ready"
DEGRADED = "Degraded"


def desired(type_: str, ok: bool, reason: str, message: str) -> Condition:
    return Condition(
        type=type_,
        status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
        reason=reason,
        message=message,
    )


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def stamped(
    condition: Condition, *, generation: int, previous: Mapping[str, Any] | None, now: str
) -> WireCondition:
    same_status = previous is not None and previous.get("status") == condition.status.value
    since = str(previous.get("lastTransitionTime") or now) if previous and same_status else now
    return condition.model_copy(
        update={"observed_generation": generation, "last_transition_time": since}
    ).to_manifest()


def merge(
    current: Sequence[Mapping[str, Any]],
    wanted: Iterable[Condition],
    *,
    generation: int,
    now: str,
) -> list[WireCondition]:
    """The wanted conditions in wire form, followed by the current ones of other types."""
    wanted = list(wanted)
    wanted_types = {c.type for c in wanted}
    updated = [
        stamped(c, generation=generation, previous=find(current, c.type), now=now) for c in wanted
    ]
    return updated + [dict(c) for c in current if c.get("type") not in wanted_types]


def transitions(
    current: Sequence[Mapping[str, Any]], wanted: Iterable[Condition]
) -> list[Condition]:
    """The wanted conditions whose status, reason or message differ from the current ones."""
    changed = []
    for condition in wanted:
        previous = find(current, condition.type)
        now = (condition.status.value, condition.reason, condition.message)
        if (
            previous is None
            or (
                previous.get("status"),
                previous.get("reason"),
                previous.get("message"),
            )
            != now
        ):
            changed.append(condition)
    return changed


def is_ready(status: Mapping[str, Any] | None) -> bool:
    """Whether a status stanza says Ready=True."""
    ready = find((status or {}).get("conditions") or [], READY)
    return ready is not None and ready.get("status") == ConditionStatus.TRUE.value
