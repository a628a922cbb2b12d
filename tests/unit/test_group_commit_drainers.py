"""GroupCommit's drainers, with a stand-in bus (the real one: tests/integration/test_group_commit.py)."""

from __future__ import annotations

import asyncio

from services.common.group_commit import GroupCommit


class GatedBus:
    """Answers a command alone (CommandBus.execute) once `gate` opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def execute(self, _pool, name: str, _command, _context) -> str:  # noqa: ANN001
        await self.gate.wait()
        return name


async def test_a_command_queued_as_the_last_drainer_finds_the_queue_empty_is_answered():
    bus = GatedBus()
    group = GroupCommit(bus, None, parallel=1)  # type: ignore[arg-type]
    first = asyncio.create_task(group.execute("first", object(), None))  # type: ignore[arg-type]
    for _ in range(3):
        await asyncio.sleep(0)  # the drainer runs `first` and waits on the gate
    assert len(group.drainers) == 1
    bus.gate.set()  # the drainer resumes next turn, answers `first`, finds the queue empty...
    second = asyncio.create_task(group.execute("second", object(), None))  # type: ignore[arg-type]
    # ...and `second` is queued in the turn after that, before a done-callback would run.
    assert await asyncio.wait_for(first, 2) == "first"
    assert await asyncio.wait_for(second, 2) == "second"  # a drainer was started for it
    await asyncio.sleep(0)
    assert not group.drainers
