"""Which failures are transient (a dependency away: wait and retry) and which are not (a
record or a bug: isolate it), decided once for every consumer, the relay and the HTTP
layer (STYLE.md 11: one mechanism, not a catch per call site)."""

from __future__ import annotations

import asyncio
import traceback

import asyncpg
from aiokafka.errors import KafkaError

# PostgreSQL error classes that say "the server or the connection", not "this statement":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (admin or
# crash shutdown, cannot connect now), 40001/40P01 serialization failure and deadlock.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
_TRANSIENT_SQLSTATES = ("40001", "40P01")


def database_unavailable(error: BaseException) -> bool:
    """PostgreSQL cannot be reached or refuses work for now: nothing was recorded."""
    if isinstance(error, (OSError, asyncpg.InterfaceError, asyncio.TimeoutError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        state = getattr(error, "sqlstate", "") or ""
        return state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES
    return False


def kafka_unavailable(error: BaseException) -> bool:
    """A Kafka client error: the connection or the cluster's state, never a record's
    content (records fail in the handlers, after the client gave them)."""
    return isinstance(error, KafkaError)


def transient(error: BaseException) -> bool:
    return database_unavailable(error) or kafka_unavailable(error)


def where(error: BaseException) -> str:
    """The exception's class and the innermost frame of the platform's code it passed
    through: enough to find the bug, without the message (which may quote input)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/services/" in f.filename or "/alfi_contracts/" in f.filename] or frames
    if not ours:
        return type(error).__name__
    frame = ours[-1]
    module = frame.filename.rsplit("/", 2)
    return f"{type(error).__name__} in {'/'.join(module[-2:])}:{frame.lineno} ({frame.name})"
