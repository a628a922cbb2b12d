"""The load of a chaos run: which commands, in what order, over which channel, and the
clients that send them and count every answer.

The commands are demo/dataset.py's realistic 2022-2024 (drawn from the run's seed),
thinned to a share of its households (and every command about them), plus referent
changes the demo does not make. Every create carries its client-chosen id, so sending it
again is a replay (200), never a second thing.

Each command goes over HTTP or as a Kafka command on `alfi.<service>.commands`
(`{"command", "data"}`, key = household id, else the workshop or meeting id), chosen per
chain: a household's intake commands, an interview and its cancellation, a situation and
its resolution travel together, so what follows a Kafka command is on the same partition
behind it. A command is sent once the commands it needs were accepted: a referent change
or closure after the household's previous intake command, an interview, rehousing or
escalation after the enrolment (casework and veille may not have replicated it yet: HTTP
answers 409 `household_not_yet_known` and is retried; over Kafka the platform must
retry), a cancellation or resolution after its creation, a meeting after the escalations
it reviews, an action's completion or cancellation after the meeting that decided it.
Some cases stay on HTTP because only an HTTP answer says the command has taken effect:
situations reviewed in meetings (a meeting needs them recorded), meetings that decide
actions and those actions' completions and cancellations, and households whose personal
data is erased at the end (an erasure stops casework and veille from recording anything
more about the household, so all of it must be in before).

HTTP clients retry on connection errors, 5xx (503 honouring Retry-After) and 409
`household_not_yet_known` (honouring Retry-After); every answer is counted. After an
attempt whose outcome is unknown (connection lost, 5xx), a repeated create is a replay,
a repeated closure, cancellation or resolution answering 409 "already ..." confirms the
first attempt, and a referent change is read back (GET) before it is sent again. A Kafka
command is accepted once produced with acks=all (idempotent producer).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from alfi_contracts.topics import commands_topic
from demo.dataset import PHASES, WORKERS, Dataset, build

# (service, method, path pattern, command, the id the path carries)
ROUTES: list[tuple[str, str, re.Pattern[str], str, str | None]] = [
    (service, method, re.compile(pattern + "$"), command, id_field)
    for service, method, pattern, command, id_field in (
        ("intake", "POST", r"/v1/households", "enrol_household", None),
        ("intake", "POST", r"/v1/households/([^/]+)/referent", "change_referent", "household_id"),
        ("intake", "POST", r"/v1/households/([^/]+)/closure", "close_accompaniment", "household_id"),
        ("intake", "DELETE", r"/v1/households/([^/]+)/personal-data", "erase_personal_data", "household_id"),
        ("casework", "POST", r"/v1/interviews", "record_interview", None),
        ("casework", "POST", r"/v1/interviews/([^/]+)/cancellation", "cancel_interview", "interview_id"),
        ("casework", "POST", r"/v1/workshops", "record_workshop", None),
        ("casework", "POST", r"/v1/rehousings", "confirm_rehousing", None),
        ("veille", "POST", r"/v1/situations", "escalate_situation", None),
        ("veille", "POST", r"/v1/situations/([^/]+)/resolution", "resolve_situation", "situation_id"),
        ("veille", "POST", r"/v1/meetings", "record_meeting", None),
        ("veille", "POST", r"/v1/actions/([^/]+)/completion", "complete_action", "action_id"),
        ("veille", "POST", r"/v1/actions/([^/]+)/cancellation", "cancel_action", "action_id"),
    )
]
CREATES = {"enrol_household": "household_id", "record_interview": "interview_id", "record_workshop": "workshop_id",
           "confirm_rehousing": "rehousing_id", "escalate_situation": "situation_id", "record_meeting": "meeting_id"}
# Change commands that refuse a repeat with 409: after an unknown outcome, that answer
# says the first attempt was recorded.
REFUSE_REPEAT = {"close_accompaniment", "cancel_interview", "resolve_situation", "complete_action", "cancel_action"}
# An action's completion or cancellation goes over HTTP, after its meeting was answered:
# over Kafka it could be read before the meeting's command and be dead-lettered (404).
FOLLOW_UP = ("complete_action", "cancel_action")
# When each phase's commands are due, as a share of the load's duration. The windows
# overlap: interviews start while households are still being enrolled.
WINDOWS = {"households": (0.0, 0.3), "cases": (0.03, 0.85), "meetings": (0.35, 0.9), "follow-up": (0.4, 0.93),
           "corrections": (0.4, 0.92), "referents": (0.3, 0.9), "closures": (0.5, 0.95), "erasures": (0.95, 1.0)}
ORDER = ("households", "cases", "meetings", "follow-up", "corrections", "referents", "closures", "erasures")
assert set(ORDER) == {*PHASES, "referents"}


@dataclass
class Command:
    n: int
    phase: str
    service: str
    method: str
    path: str
    body: dict | None
    name: str
    data: dict  # the command's data, ids included (its Kafka form)
    household: str | None  # the household it is about, if any
    key: str  # Kafka key: the household, else the workshop or meeting
    after: list[int] = field(default_factory=list)
    channel: str = "http"
    at: float = 0.0  # when it is due, as a share of the load's duration
    accepted: bool = False
    outcome: str = ""
    resent: bool = False  # produced again after a failed produce (its outcome unknown)

    def describe(self) -> str:
        return f"{self.name} {self.data.get(CREATES.get(self.name, ''), self.key)} over {self.channel}"


def command_of(service: str, method: str, path: str, body: dict | None) -> tuple[str, dict]:
    for route_service, route_method, pattern, name, id_field in ROUTES:
        match = pattern.match(path)
        if route_service == service and route_method == method and match:
            return name, ({id_field: match.group(1)} if id_field else {}) | (body or {})
    raise ValueError(f"no command for {method} {service}{path}")


def referent_changes(dataset: Dataset, kept: set[str], rng: random.Random) -> list[tuple[str, str, str, dict]]:
    """One or two referent changes for about a quarter of the households, dated strictly
    inside the accompaniment on distinct days (the latest date is the current referent;
    no tie for the projection's event-time rule to break)."""
    changes = []
    for household in dataset.households:
        if household.id not in kept or rng.random() >= 0.25:
            continue
        first = household.enrolled_on + timedelta(days=1)
        last = min(household.closed_on or date(2024, 6, 30), date(2024, 6, 30))
        if (last - first).days < 2:
            continue
        days = sorted(rng.sample(range((last - first).days + 1), rng.choice([1, 1, 2])))
        referent = household.referent
        for day in days:
            referent = rng.choice([w for w in WORKERS if w != referent])
            changes.append(("intake", "POST", f"/v1/households/{household.id}/referent",
                            {"referent_worker_id": referent, "changed_on": (first + timedelta(days=day)).isoformat()}))
    return changes


def plan(seed: int, share: float, kafka_share: float) -> list[Command]:
    """The run's commands in sending order, each with what it waits for, its channel and
    when it is due. The same arguments give the same plan."""
    dataset = build(seed)
    rng = random.Random(f"chaos-load:{seed}")
    kept = {h.id for h in dataset.households if rng.random() < share}
    phases = dict(dataset.phases, referents=referent_changes(dataset, kept, rng))
    household_of: dict[str, str] = {}  # interview / situation -> household
    commands: list[Command] = []
    for phase in ORDER:
        for service, method, path, body in phases.get(phase, []):
            name, data = command_of(service, method, path, body)
            if name == "record_meeting":
                # The meeting reviews the situations of the households kept; one left with
                # none is dropped (the contract wants at least one, whatever DESIGN.md says).
                data = body = dict(data, reviewed=[r for r in data["reviewed"] if r["situation_id"] in household_of])
                if not data["reviewed"]:
                    continue
            elif name == "record_workshop" and rng.random() >= share:
                continue
            household = data.get("household_id") or household_of.get(data.get("interview_id") or data.get(
                "situation_id") or data.get("action_id", ""))
            if name not in ("record_meeting", "record_workshop") and household not in kept:
                continue
            for id_field in ("interview_id", "situation_id"):
                if name in ("record_interview", "escalate_situation") and id_field in data:
                    household_of[data[id_field]] = household
            if name == "record_meeting":
                household_of.update({a["action_id"]: household_of[r["situation_id"]]
                                     for r in data["reviewed"] for a in r.get("actions", [])})
            key = household or data.get("workshop_id") or data["meeting_id"]
            commands.append(Command(len(commands), phase, service, method, path, body, name, data, household, key))
    _order(commands)
    _channels(commands, rng, kafka_share)
    for command in commands:
        low, high = WINDOWS[command.phase]
        command.at = low + rng.random() * (high - low)
    return commands


def _order(commands: list[Command]) -> None:
    """What each command waits for (see the module's docstring)."""
    intake_chain: dict[str, int] = {}
    created: dict[str, int] = {}
    about: dict[str, list[int]] = defaultdict(list)
    for command in commands:
        if command.name == "erase_personal_data":
            command.after = list(about[command.household])
        elif command.service == "intake" and command.name != "enrol_household":
            command.after = [intake_chain[command.household]]
        elif command.name in ("record_interview", "confirm_rehousing", "escalate_situation"):
            command.after = [created[command.household]]
        elif command.name == "cancel_interview":
            command.after = [created[command.data["interview_id"]]]
        elif command.name == "resolve_situation":
            command.after = [created[command.data["situation_id"]]]
        elif command.name == "record_meeting":
            command.after = [created[r["situation_id"]] for r in command.data["reviewed"]]
            created.update({a["action_id"]: command.n for r in command.data["reviewed"] for a in r.get("actions", [])})
        elif command.name in FOLLOW_UP:
            command.after = [created[command.data["action_id"]]]
        if command.name in CREATES:
            created[command.data[CREATES[command.name]]] = command.n
        if command.service == "intake":
            intake_chain[command.household] = command.n
        if command.household:
            about[command.household].append(command.n)


def _channels(commands: list[Command], rng: random.Random, kafka_share: float) -> None:
    """HTTP or Kafka per chain: a command that waits on its chain's root follows it."""
    erased = {c.household for c in commands if c.name == "erase_personal_data"}
    reviewed = {r["situation_id"] for c in commands if c.name == "record_meeting" for r in c.data["reviewed"]}
    chain_channel: dict[str, str] = {}
    for command in commands:
        if command.service == "intake":
            chain = command.household
        elif command.name in ("cancel_interview", "resolve_situation"):
            chain = command.data.get("interview_id") or command.data["situation_id"]
        else:
            chain = command.data.get(CREATES.get(command.name, ""), command.key)
        if chain not in chain_channel:
            http_only = (command.household in erased or command.data.get("situation_id") in reviewed
                         or command.name in FOLLOW_UP  # and the meetings whose actions they follow
                         or any(r.get("actions") for r in command.data.get("reviewed", [])))
            chain_channel[chain] = "kafka" if not http_only and rng.random() < kafka_share else "http"
        command.channel = chain_channel[chain]


# ---------------------------------------------------------------------------- sending


@dataclass
class Tally:
    """Every answer and every failed attempt, by kind."""

    statuses: Counter = field(default_factory=Counter)  # HTTP status -> answers
    unavailable_with_retry_after: int = 0  # 503 answers carrying Retry-After
    unavailable_without_retry_after: int = 0
    errors: Counter = field(default_factory=Counter)  # connection refused / lost, Kafka errors
    not_yet_known: int = 0  # 409 household_not_yet_known, retried
    confirmed: Counter = field(default_factory=Counter)  # unknown outcomes confirmed (conflict / read back)
    refusals: list[str] = field(default_factory=list)

    def answered(self, status: int, retry_after: str | None) -> None:
        self.statuses[status] += 1
        if status == 503:
            if retry_after:
                self.unavailable_with_retry_after += 1
            else:
                self.unavailable_without_retry_after += 1


def _seconds(retry_after: str | None, default: float) -> float:
    try:
        return min(max(float(retry_after), 0.0), 30.0) if retry_after else default
    except ValueError:
        return default


class Sender:
    def __init__(self, urls: dict[str, str], token: str, bootstrap: str, *, correlation: str,
                 http_clients: int = 16, kafka_in_flight: int = 32, give_up_after: float = 120.0) -> None:
        self.urls = urls
        self.token = token
        self.bootstrap = bootstrap
        self.correlation = correlation
        self.http_gate = asyncio.Semaphore(http_clients)
        self.kafka_gate = asyncio.Semaphore(kafka_in_flight)
        # Retries stop this long after the load's window ends: a command still refused
        # then is given up (and what waits on it skipped), so a stuck platform fails
        # the run in bounded time instead of holding it.
        self.give_up_after = give_up_after
        self.deadline = 0.0
        self.tally = Tally()
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def send_all(self, commands: list[Command], duration: float) -> None:
        """Send every command when due and once what it waits for was accepted; a command
        whose prerequisite was not accepted is skipped."""
        done = {c.n: asyncio.Event() for c in commands}
        started = time.monotonic()
        self.deadline = started + duration + self.give_up_after

        async def one(command: Command) -> None:
            try:
                for n in command.after:
                    await done[n].wait()
                if not all(commands[n].accepted for n in command.after):
                    command.outcome = "skipped"
                    return
                await asyncio.sleep(max(0.0, started + command.at * duration - time.monotonic()))
                send = self._send_http if command.channel == "http" else self._send_kafka
                command.accepted = await send(command)
            finally:
                done[command.n].set()

        headers = {"Authorization": f"Bearer {self.token}", "X-Correlation-ID": self.correlation}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30),
                                         connector=aiohttp.TCPConnector(limit=0)) as self._http:
            try:
                await asyncio.gather(*(one(c) for c in commands))
            finally:
                if self._producer is not None:
                    await self._producer.stop()

    # ------------------------------------------------------------ HTTP

    async def _send_http(self, command: Command) -> bool:
        assert self._http is not None
        url = self.urls[command.service] + command.path
        unknown = False  # an earlier attempt may have been recorded
        pause = 0.2
        while time.monotonic() < self.deadline:
            if unknown and command.name == "change_referent":
                recorded = await self._referent_recorded(command)
                if recorded:
                    self.tally.confirmed["read back"] += 1
                    command.outcome = "confirmed by reading it back"
                    return True
                if recorded is None:
                    await asyncio.sleep(pause)
                    continue
            try:
                async with self.http_gate, self._http.request(command.method, url, json=command.body) as response:
                    status, retry_after = response.status, response.headers.get("Retry-After")
                    try:
                        answer = await response.json(content_type=None)
                    except ValueError:
                        answer = None
            except aiohttp.ClientConnectorError:
                self.tally.errors["connection refused"] += 1  # never reached the service
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, 2.0)
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.tally.errors["connection lost or timed out"] += 1
                unknown = True
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, 2.0)
                continue
            self.tally.answered(status, retry_after)
            kind = answer.get("kind") if isinstance(answer, dict) else None
            if status in (200, 201):
                command.outcome = f"{status}"
                return True
            if status == 409 and kind == "household_not_yet_known":
                self.tally.not_yet_known += 1
                await asyncio.sleep(_seconds(retry_after, 1.0))
                continue
            if status >= 500:
                unknown = unknown or status != 503  # a 503 says the command was not taken in
                await asyncio.sleep(_seconds(retry_after, pause))
                pause = min(pause * 1.5, 2.0)
                continue
            if status == 409 and unknown and command.name in REFUSE_REPEAT:
                self.tally.confirmed["409 on a repeat"] += 1
                command.outcome = "confirmed by a 409 on its repeat"
                return True
            detail = answer.get("detail") if isinstance(answer, dict) else answer
            command.outcome = f"refused {status}"
            self.tally.refusals.append(f"{command.describe()}: {status} {detail}")
            return False
        command.outcome = "gave up"
        self.tally.refusals.append(f"{command.describe()}: still not accepted {self.give_up_after:.0f}s after the load")
        return False

    async def _referent_recorded(self, command: Command) -> bool | None:
        """Whether intake's household now has this referent; None when it cannot tell."""
        assert self._http is not None
        try:
            async with self._http.get(f"{self.urls['intake']}/v1/households/{command.household}") as response:
                if response.status != 200:
                    return None
                return (await response.json())["referent_worker_id"] == command.data["referent_worker_id"]
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    # ------------------------------------------------------------ Kafka

    async def _producer_started(self) -> AIOKafkaProducer | None:
        async with self._producer_lock:
            while self._producer is None and time.monotonic() < self.deadline:
                # A batch waits for the broker up to request_timeout_ms: longer than any
                # outage of the schedule, so a produce rarely fails at all.
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                            request_timeout_ms=120_000, linger_ms=5, client_id="alfi-chaos")
                try:
                    await producer.start()
                    self._producer = producer
                except KafkaError as error:
                    self.tally.errors[f"kafka {type(error).__name__}"] += 1
                    await producer.stop()
                    await asyncio.sleep(1)
            return self._producer

    async def _send_kafka(self, command: Command) -> bool:
        payload = json.dumps({"command": command.name, "data": command.data}).encode()
        headers = [("correlationid", self.correlation.encode())]
        while time.monotonic() < self.deadline:
            producer = await self._producer_started()
            if producer is None:
                break
            try:
                async with self.kafka_gate:
                    await producer.send_and_wait(commands_topic(command.service), payload,
                                                 key=command.key.encode(), headers=headers)
                command.outcome = "produced"
                return True
            except KafkaError as error:
                self.tally.errors[f"kafka {type(error).__name__}"] += 1
                command.resent = True  # the failed produce may have been written
                await asyncio.sleep(1)
        command.outcome = "gave up"
        self.tally.refusals.append(f"{command.describe()}: not produced {self.give_up_after:.0f}s after the load")
        return False
