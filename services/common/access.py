"""Object-level authorisation (OWASP API1): who may act on which territory and worker.

A token has scopes (what it may do) and may be bound to territories (where: none means
every territory) and to one worker id (a field tool may record interviews only under
its worker). Each command service says, in `services/<svc>/access.py`, which territory
and worker a command touches: `scope_of(conn, command_name, command) -> Scope`, read in
the command's own transaction, from the very row the handler then changes (locked as the
handler locks it), so nothing can change between the check and the act. `CommandBus.run`
asks it and calls `authorise` before the handler.

Kafka commands carry no token: the bus is protected by the broker's SASL ACLs, so a
command from a topic has no principal and is not checked here (it is audited as
`kafka:<topic>`).

A refusal names the token's territories and the territory touched (slugs, not personal
data); it never names a worker id nor echoes anything else of the request. Worker binding
covers interviews only (recording and cancelling): other commands name no worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg

from .errors import NotFound, NotYetKnown, Rejected


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: what `require_scope` learnt from its token."""

    token_id: str  # a short non-secret id (the first hex digits of the token's SHA-256)
    label: str
    scopes: frozenset[str]
    territories: frozenset[str] = frozenset()  # empty: every territory
    worker_id: str | None = None

    @property
    def bound(self) -> bool:
        """Whether the token is limited beyond its scopes (territories or a worker)."""
        return bool(self.territories) or self.worker_id is not None


class Scope(NamedTuple):
    """The territory and the worker a command touches (None: it names none), and other
    territories it touches too (a meeting's reviewed situations)."""

    territory: str | None
    worker_id: str | None = None
    also: tuple[str | None, ...] = ()


AccessPolicy = Callable[[asyncpg.Connection, str, Any], Awaitable[Scope]]


class Forbidden(Rejected):
    status = 403
    kind = "forbidden"


class ForbiddenTerritory(Forbidden):
    kind = "forbidden_territory"


class ForbiddenWorker(Forbidden):
    kind = "forbidden_worker"


def _names(territories: Iterable[str]) -> str:
    return ", ".join(sorted(territories))


def authorise(principal: Principal, scope: Scope) -> None:
    """Refuse a principal acting outside its territories or under another worker."""
    if principal.territories:
        for territory in (scope.territory, *scope.also):
            if territory is None:
                # The object's territory is not known here (a row older than territories):
                # a bound token cannot be shown to be allowed, so it is not.
                raise ForbiddenTerritory(
                    "The territory of this record is not known here; a token bound to territories"
                    f" ({_names(principal.territories)}) cannot act on it. Use a token for every territory.")
            if territory not in principal.territories:
                raise ForbiddenTerritory(
                    f"The token may act only in {_names(principal.territories)}; this touches {territory}.")
    if principal.worker_id is not None and scope.worker_id is not None and scope.worker_id != principal.worker_id:
        raise ForbiddenWorker(  # neither worker id named: the request's is its input
            "The token is bound to one worker: it records and cancels interviews under that worker only.",
            field="worker_id")


def authorise_report(principal: Principal, territory: str | None) -> None:
    """A territory-bound token reads only figures filtered to one of its territories."""
    if principal.territories and territory not in principal.territories:
        raise ForbiddenTerritory(
            f"The token may read figures only for {_names(principal.territories)}:"
            f" add territory=<one of them> to the request.", field="territory")


class NoRule(Forbidden):
    kind = "forbidden_no_rule"


def rules(table: dict[str, Callable[[asyncpg.Connection, Any], Awaitable[Scope]]]) -> AccessPolicy:
    """An access policy from one rule per command name; a command without a rule is
    refused to bound tokens (fail closed) rather than let through."""

    async def scope_of(conn: asyncpg.Connection, command_name: str, command: Any) -> Scope:
        rule = table.get(command_name)
        if rule is None:
            raise NoRule(f"No access rule for {command_name}: a token bound to territories or a worker"
                         " cannot run it.")
        return await rule(conn, command)

    scope_of.rules = table  # type: ignore[attr-defined] - for the test that every command has one
    return scope_of


async def named_territory(_conn: asyncpg.Connection, command: Any) -> Scope:
    """The territory a creating command names (an enrolment, a workshop, a meeting)."""
    return Scope(command.territory)


async def replicated_household(conn: asyncpg.Connection, command: Any) -> Scope:
    """The territory of the command's household in casework's or veille's replica, read FOR
    SHARE as the handlers read it (`replica.open_household`): the check and the act see
    one row."""
    row = await conn.fetchrow("SELECT territory FROM households WHERE household_id = $1 FOR SHARE",
                              command.household_id)
    if row is None:
        raise NotYetKnown(f"Household {command.household_id} has not reached this service yet (its enrolment"
                          " comes from intake's events); retry in a moment, then check the id.",
                          field="household_id")
    return Scope(row["territory"])


async def household_of(conn: asyncpg.Connection, table: str, id_column: str, id_value: Any, what: str,
                       worker_column: str | None = None) -> Scope:
    """The territory of the household a row of `table` belongs to (and the row's worker),
    the row locked FOR UPDATE and 404 when missing, as `commands.locked` does for the
    handler. Table and column names come from the code, never from a request."""
    worker = f"t.{worker_column}" if worker_column else "NULL"
    row = await conn.fetchrow(
        f"SELECT h.territory, {worker} AS worker_id FROM {table} t JOIN households h USING (household_id)"
        f" WHERE t.{id_column} = $1 FOR UPDATE OF t", id_value)
    if row is None:
        raise NotFound(f"No {what} {id_value}.", field=id_column)
    return Scope(row["territory"], row["worker_id"])
