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
committed, with its events in the outbox and its audit row. When a command of a group
fails (a refusal, a conflict between concurrent requests, a deadlock), the group's
transaction is rolled back and every command of it runs again alone
(`CommandBus.execute`): a refused command fails alone, audited as refused, and the
others are recorded as if they had come one by one. Refusals are rare, so the price of
running a group twice is rarely paid. PostgreSQL away, or a COMMIT that fails (its
outcome unknown), answers every command of the group with that error at once (503:
retry), never running anything twice. A group's commands are taken in household order
(stable: one household's keep theirs), so two groups lock households in one order.

No background task outlives the work: a drainer is a task started when a command waits
and no more than `parallel` are running, and it ends when the queue is empty, leaving
the set of drainers in the same step (a command queued then starts another).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import asyncpg
import structlog
from pydantic import BaseModel

from . import faults
from .commands import CommandBus, Context, Outcome, Unit
from .db import stateless

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
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(name, command, context, answer))
        if len(self.drainers) < self.parallel:
            self.drainers.add(asyncio.create_task(self._drain()))
        # Shielded: a request given up by its client does not take the group's work with it
        # (and shield reads the error it then gets: asyncio never logs it as unretrieved).
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        try:
            while self.waiting:
                group = [self.waiting.popleft() for _ in range(min(len(self.waiting), self.max_group))]
                if len(group) == 1:
                    await self._one_by_one(group)  # the same transaction, and a refusal is not run twice
                    continue
                group.sort(key=lambda w: str(getattr(w.command, "household_id", "")))
                try:
                    done = await self._commit(group)
                except _Unknown as unknown:  # nothing to run again: it may have committed, or PostgreSQL is away
                    for waiting in group:
                        _answer(waiting, error=unknown.error)
                    continue
                except Exception:  # noqa: BLE001 - each command again alone, with its own answer
                    await self._one_by_one(group)
                    continue
                for waiting, outcome, unit in done:
                    _answer(waiting, outcome)
                    try:
                        self.bus.accepted(waiting.name, waiting.context, outcome, unit)
                    except Exception:  # noqa: BLE001 - committed and answered: a log line must not undo that
                        log.warning("command_accepted_not_logged", command=waiting.name)
        finally:
            # In the step that found the queue empty: a command queued after it starts
            # another drainer.
            self.drainers.discard(asyncio.current_task())

    async def _commit(self, group: list[_Waiting]) -> list[tuple[_Waiting, Outcome, Unit]]:
        """Run and commit the group; `_Unknown` when PostgreSQL is away or the COMMIT failed."""
        try:
            async with stateless(self.pool) as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    applied = await self.bus.apply_all(conn, [(w.name, w.command, w.context) for w in group])
                    done = [(waiting, outcome, unit) for waiting, (outcome, unit) in zip(group, applied, strict=True)]
                except BaseException:
                    await transaction.rollback()
                    raise
                try:
                    await transaction.commit()
                except Exception as error:
                    raise _Unknown(error) from error
        except _Unknown:
            raise
        except Exception as error:
            # PostgreSQL away (not a deadlock or a serialization failure, which only this
            # group's commands met: those run again alone).
            if faults.database_unavailable(error) and getattr(error, "sqlstate", None) not in ("40001", "40P01"):
                raise _Unknown(error) from error
            raise
        return done

    async def _one_by_one(self, group: list[_Waiting]) -> None:
        if len(group) > 1:
            log.info("command_group_split", commands=len(group))
        for waiting in group:
            try:
                outcome = await self.bus.execute(self.pool, waiting.name, waiting.command, waiting.context)
            except Exception as error:  # noqa: BLE001 - the request answers it (problem+json)
                _answer(waiting, error=error)
            else:
                _answer(waiting, outcome)


class _Unknown(Exception):
    """The group's outcome cannot be known (its COMMIT failed) or nothing ran (PostgreSQL
    away): every command of it is answered with `error`, none is run again."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


def _answer(waiting: _Waiting, outcome: Outcome | None = None, error: BaseException | None = None) -> None:
    if waiting.answer.done():
        return
    if error is not None:
        waiting.answer.set_exception(error)
    else:
        waiting.answer.set_result(outcome)
