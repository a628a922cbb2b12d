"""Group commit: concurrent HTTP commands share one transaction, one outbox write and one
commit (issue 15).

Most of a command's cost is round trips to PostgreSQL, not work: BEGIN, the handler's
statements, the outbox and audit rows, COMMIT (and its WAL flush). Commands that arrive
while others are being committed wait in a queue; a drainer takes up to `max_group` of
them, runs each one's access check and handler in order in one transaction (no
savepoints), writes every event and audit row of the group in one statement
(`outbox.enqueue`) and commits once. Up to `parallel` drainers run at a time (each on a
connection of its own, so PostgreSQL keeps working on several groups); a command alone
runs at once, in a group of one.

Nothing a client sees changes: an answer (201/200) is sent only after its group
committed, with its events in the outbox and its audit row. When anything in a group
fails (a refusal, a conflict between concurrent requests, a deadlock, PostgreSQL away),
the group's transaction is rolled back and every command of it runs again alone
(`CommandBus.execute`): a refused command fails alone, audited as refused, and the
others are recorded as if they had come one by one. Refusals are rare, so the price of
running a group twice is rarely paid.

No background task outlives the work: a drainer is a task started when a command waits
and no more than `parallel` are running, and it ends when the queue is empty.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import asyncpg
import structlog
from pydantic import BaseModel

from .commands import CommandBus, Context, Outcome, Unit, household_keys
from .db import stateless
from .outbox import enqueue

log = structlog.get_logger("alfi.commands")


@dataclass
class _Waiting:
    name: str
    command: BaseModel
    context: Context
    answer: asyncio.Future


class GroupCommit:
    def __init__(self, bus: CommandBus, pool: asyncpg.Pool, max_group: int = 64, parallel: int = 4) -> None:
        self.bus = bus
        self.pool = pool
        self.max_group = max_group
        self.parallel = parallel
        self.waiting: deque[_Waiting] = deque()
        self.drainers: set[asyncio.Task] = set()

    async def execute(self, name: str, command: BaseModel, context: Context) -> Outcome:
        """The command's outcome once committed (its group's, or its own on a refusal)."""
        waiting = _Waiting(name, command, context, asyncio.get_running_loop().create_future())
        self.waiting.append(waiting)
        if len(self.drainers) < self.parallel:
            drainer = asyncio.create_task(self._drain())
            self.drainers.add(drainer)
            drainer.add_done_callback(self.drainers.discard)
        # Shielded: a request given up by its client does not take the group's work with it.
        return await asyncio.shield(waiting.answer)

    async def _drain(self) -> None:
        while self.waiting:
            group = [self.waiting.popleft() for _ in range(min(len(self.waiting), self.max_group))]
            if len(group) == 1:
                await self._one_by_one(group)  # the same transaction, and a refusal is not run twice
                continue
            try:
                await self._commit(group)
            except Exception:  # noqa: BLE001 - each command again alone, with its own answer
                await self._one_by_one(group)

    async def _commit(self, group: list[_Waiting]) -> None:
        done: list[tuple[_Waiting, Outcome, Unit]] = []
        async with stateless(self.pool) as conn, conn.transaction():
            keys = await household_keys(conn, [waiting.command for waiting in group])
            for waiting in group:
                outcome, unit = await self.bus.apply(conn, waiting.name, waiting.command, waiting.context, keys)
                done.append((waiting, outcome, unit))
            await enqueue(conn, self.bus.schema, [m for _, _, unit in done for m in unit.messages],
                          [self.bus.audit_entry(w.name, w.context, outcome) for w, outcome, _ in done])
        for waiting, outcome, unit in done:
            self.bus.accepted(waiting.name, waiting.context, outcome, unit)
            if not waiting.answer.done():
                waiting.answer.set_result(outcome)

    async def _one_by_one(self, group: list[_Waiting]) -> None:
        if len(group) > 1:
            log.info("command_group_split", commands=len(group))
        for waiting in group:
            try:
                outcome = await self.bus.execute(self.pool, waiting.name, waiting.command, waiting.context)
            except Exception as error:  # noqa: BLE001 - the request answers it (problem+json)
                if not waiting.answer.done():
                    waiting.answer.set_exception(error)
            else:
                if not waiting.answer.done():
                    waiting.answer.set_result(outcome)
