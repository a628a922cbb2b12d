"""Crypto-shredding: one key per household, in one place, and how events are sealed.

The keys live in the platform-wide `keyring` schema (like `auth`): intake creates a
household's key in its enrolment transaction; its erasure transaction stops all sealing
for the household and schedules the key's deletion after a grace period (`sweep`, run
by every service's observer once a minute), during which consumers still apply events already in
flight;
casework and veille read it in the command transaction that seals an event
(`FOR SHARE`, so an erasure and a command never cross); consumers (the replicas, stats)
read keys through a `KeyCache`, a few seconds old at most. Keys never leave PostgreSQL
and never travel on the bus. In production the schema gets its own role and grants; see
README "Privacy".

Sealing: the personal fields of an event (alfi_contracts.privacy) as compact JSON,
encrypted with AES-256-GCM (`cryptography`), a random 12-byte nonce, and the event's
type and id as associated data; written "v1.<base64url(nonce + ciphertext + tag)>".
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from alfi_contracts import ContractError, EventData
from alfi_contracts.envelope import Sealer, Unsealer
from alfi_contracts.privacy import personal_fields

from .errors import Conflict
from .migrations import migrate, sql_files

SCHEMA = "keyring"
SQL = Path(__file__).parent / "sql"
_NONCE = 12


async def migrate_keyring(conn: asyncpg.Connection) -> None:
    await migrate(conn, SCHEMA, sql_files(SQL, "keyring_*.sql"))


class Erased(Conflict):
    """The household's key was destroyed (or never existed): nothing can be sealed for it."""

    def __init__(self, household_id: UUID) -> None:
        super().__init__(f"Household {household_id}'s personal data was erased: nothing more can be recorded.",
                         field="household_id")


def new_key() -> bytes:
    return AESGCM.generate_key(256)


def key_creation(households: str, key: str) -> str:
    """The INSERT of `key` (a parameter) for the household of `households` (a one-row
    relation of the caller's statement with a household_id column), never for an erased
    one and never over an existing key; returns the household_id when it created it."""
    return (f"INSERT INTO {SCHEMA}.household_keys (household_id, key) SELECT s.household_id, {key}::bytea"
            f" FROM {households} s WHERE NOT EXISTS"
            f" (SELECT 1 FROM {SCHEMA}.destroyed_keys d WHERE d.household_id = s.household_id)"
            " ON CONFLICT (household_id) DO NOTHING RETURNING household_id")


async def create_key(conn: asyncpg.Connection, household_id: UUID) -> bytes:
    """A new household's key, in the enrolment's transaction (one statement); never for
    an erased one. Returns it, to seal the enrolment with."""
    key = new_key()
    created = await conn.fetchval(
        f"WITH s AS (SELECT $1::uuid AS household_id), made AS ({key_creation('s', '$2')}) SELECT count(*) FROM made",
        household_id, key)
    return key if created else await locked_key(conn, household_id)  # there already, or erased


async def destroy_key(conn: asyncpg.Connection, household_id: UUID, grace_seconds: float) -> None:
    """Erase: nothing is sealed for the household after this transaction commits, and
    after `grace_seconds` (then `sweep`) no sealed field of it opens any more: events its
    services published just before are still applied whole by their consumers meanwhile."""
    if grace_seconds <= 0:
        await conn.execute(f"DELETE FROM {SCHEMA}.household_keys WHERE household_id = $1", household_id)
    else:
        await conn.execute(
            f"UPDATE {SCHEMA}.household_keys SET destroy_after = now() + make_interval(secs => $2)"
            " WHERE household_id = $1 AND destroy_after IS NULL", household_id, float(grace_seconds))
    await conn.execute(f"INSERT INTO {SCHEMA}.destroyed_keys (household_id) VALUES ($1)"
                       " ON CONFLICT (household_id) DO NOTHING", household_id)


async def sweep(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """Delete the keys whose grace period is over; returns how many."""
    status = await conn.execute(f"DELETE FROM {SCHEMA}.household_keys WHERE destroy_after <= now()")
    return int(status.split()[-1])


async def locked_key(conn: asyncpg.Connection, household_id: UUID) -> bytes:
    """The key to seal with, held for the transaction (an erasure waits for it)."""
    key = await conn.fetchval(
        f"SELECT key FROM {SCHEMA}.household_keys WHERE household_id = $1 AND destroy_after IS NULL FOR SHARE",
        household_id)
    if key is None:
        raise Erased(household_id)
    return key


async def locked_keys(conn: asyncpg.Connection, household_ids: Iterable[UUID]) -> dict[UUID, bytes]:
    """`locked_key` for many households in one statement (a poll's, a group's), locked in
    one order; those without a key (erased, unknown) are absent."""
    rows = await conn.fetch(
        f"SELECT household_id, key FROM {SCHEMA}.household_keys WHERE household_id = ANY($1::uuid[])"
        " AND destroy_after IS NULL ORDER BY household_id FOR SHARE", list(set(household_ids)))
    return {r["household_id"]: r["key"] for r in rows}


async def backfill(conn: asyncpg.Connection, households_table: str = "households") -> int:
    """Keys for households enrolled before keys existed (intake's start, idempotent): a
    key for each one not erased and without one, and erased ones recorded as such.
    Returns how many keys were made."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.destroyed_keys (household_id) SELECT household_id FROM {households_table}"
        " WHERE erased_on IS NOT NULL ON CONFLICT (household_id) DO NOTHING")
    missing = await conn.fetch(
        f"SELECT h.household_id FROM {households_table} h WHERE h.erased_on IS NULL AND NOT EXISTS"
        f" (SELECT 1 FROM {SCHEMA}.household_keys k WHERE k.household_id = h.household_id)")
    if missing:
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.household_keys (household_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(r["household_id"], new_key()) for r in missing])
    return len(missing)


def seal(key: bytes, associated: bytes, personal: dict[str, Any]) -> str:
    nonce = os.urandom(_NONCE)
    plaintext = json.dumps(personal, separators=(",", ":"), sort_keys=True).encode()
    return "v1." + base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, associated)).decode().rstrip("=")


_URLSAFE = bytes.maketrans(b"-_", b"+/")  # bytes.translate: a table, not a dict per character


def open_sealed(key: bytes | AESGCM, sealed: str, associated: bytes) -> bytes:
    """The personal fields' JSON (the reader validates it); a value that does not
    authenticate with the household's key (altered, or moved from another event) is the
    event's fault: invalid_data."""
    try:
        token = (sealed[3:] if sealed.startswith("v1.") else sealed).encode()
        raw = binascii.a2b_base64((token + b"=" * (-len(token) % 4)).translate(_URLSAFE))
        cipher = key if isinstance(key, AESGCM) else AESGCM(key)
        return cipher.decrypt(raw[:_NONCE], raw[_NONCE:], associated)
    except (InvalidTag, ValueError, binascii.Error):
        raise ContractError("invalid_data", "sealed: does not open with the household's key") from None


def sealer(key: bytes) -> Sealer:
    return lambda _data, associated, personal: seal(key, associated, personal)


async def sealer_for(conn: asyncpg.Connection, data: EventData, key: bytes | None = None) -> Sealer | None:
    """How to seal `data` in this transaction (with `key` when the caller holds it): None
    when it has nothing personal."""
    if not personal_fields(type(data)):
        return None
    return sealer(key or await locked_key(conn, data.household_id))  # type: ignore[attr-defined]


class KeyCache:
    """Keys for consumers: fetched for a whole poll at once (`load`), then opened without
    waiting (`unseal`). An entry lives `ttl` seconds; a destroyed key reads as None, and
    `forget` drops an entry at once. Keys are found by the household id as the record key
    gives it (text) and as the event gives it (UUID).

    A ready cipher (AESGCM) costs about 2.4 KB and as much CPU to make as one decryption:
    the last `ciphers` households' are kept (a rebuild over 50,000 households held 120 MB
    of them), the keys themselves (32 bytes) for every household seen within `ttl`."""

    def __init__(self, ttl: float = 30.0, ciphers: int = 32_768) -> None:
        self.ttl = ttl
        self.max_ciphers = ciphers
        self._keys: dict[str, tuple[bytes | None, float]] = {}
        self._raw: dict[UUID, bytes | None] = {}
        # The oldest is dropped first (OrderedDict: a dict's first item after many deletions
        # at its front is found by scanning the holes they left).
        self._ciphers: OrderedDict[UUID, AESGCM] = OrderedDict()

    async def load(self, conn: asyncpg.Connection | asyncpg.Pool, household_ids: Iterable[str]) -> None:
        now = time.monotonic()
        wanted = {h for h in household_ids if (entry := self._keys.get(h)) is None or now - entry[1] > self.ttl}
        ids = []
        for household in wanted:
            try:
                ids.append(UUID(household))
            except ValueError:
                continue  # not a household key (a malformed record's)
        if not ids:
            return
        found = {r["household_id"]: r["key"] for r in await conn.fetch(
            f"SELECT household_id, key FROM {SCHEMA}.household_keys WHERE household_id = ANY($1::uuid[])", ids)}
        if len(self._keys) > 200_000:  # a rebuild over many households: keep memory bounded
            self._keys = {k: v for k, v in self._keys.items() if now - v[1] <= self.ttl}
            self._raw = {UUID(k): v[0] for k, v in self._keys.items()}
            self._ciphers = OrderedDict((h, c) for h, c in self._ciphers.items() if h in self._raw)
        for household in ids:
            key = found.get(household)
            self._keys[str(household)] = (key, now)
            if self._raw.get(household, key) != key:  # destroyed (or replaced) since
                self._ciphers.pop(household, None)
            self._raw[household] = key

    def forget(self, household_id: str) -> None:
        self._keys.pop(household_id, None)
        with contextlib.suppress(ValueError):
            household = UUID(household_id)
            self._raw.pop(household, None)
            self._ciphers.pop(household, None)

    def unseal(self, household_id: UUID | str, sealed: str, associated: bytes) -> bytes | None:
        if not isinstance(household_id, UUID):
            try:
                household_id = UUID(household_id)
            except ValueError:
                return None  # not a household id: nothing of it is known here
        cipher = self._ciphers.get(household_id)
        if cipher is None:
            key = self._raw.get(household_id)
            if key is None:
                return None
            if len(self._ciphers) >= self.max_ciphers:
                self._ciphers.popitem(last=False)
            cipher = self._ciphers[household_id] = AESGCM(key)
        return open_sealed(cipher, sealed, associated)

    @property
    def unsealer(self) -> Unsealer:
        return self.unseal
