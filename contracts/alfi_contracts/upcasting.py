"""Reading older versions of an event: each upcaster lifts `data` one version up.

A stored or in-flight event of an older version is upcast step by step to the current
version before it is validated, so consumers only ever handle the current model. Add an
upcaster here whenever an event type's version is raised, and a stored payload of the
old version under tests/unit/stored_events/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]

# (event type, version it reads) -> function returning the data of version + 1
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(function: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = function
        return function

    return register


class UnknownVersion(LookupError):
    pass


def upcast(event_type: str, version: int, current: int, data: Data) -> Data:
    if version > current:
        raise UnknownVersion(f"{event_type} v{version} is newer than this reader (v{current})")
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UnknownVersion(f"no upcaster from {event_type} v{version}")
        data = step(data)
        version += 1
    return data


@upcaster("situation.escalated", 1)
def _situation_single_reason_to_list(data: Data) -> Data:
    """v1 recorded one `reason`; v2 records the list `reasons`."""
    lifted = {k: v for k, v in data.items() if k != "reason"}
    lifted["reasons"] = [data["reason"]] if "reason" in data else []
    return lifted
