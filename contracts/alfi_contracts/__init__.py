"""Contracts of the ALFI accompaniment platform: what an upstream producer installs.

- `events`: the data of each domain event (frozen pydantic models, one per type).
- `commands`: what intake, casework and veille accept, over HTTP or Kafka.
- `envelope`: the CloudEvents 1.0 envelope, `make_event`, `encode`, `decode`.
- `upcasting`: how older event versions are read.
- `topics`: topic names and dead-letter headers.
- `vocabulary`: the closed vocabularies and constrained scalars.

JSON Schemas are exported under contracts/schemas/ and the AsyncAPI document to
contracts/asyncapi.json by `python -m alfi_contracts.export`.
"""

from .commands import COMMANDS, command_message_union
from .envelope import CONTENT_TYPE, CloudEvent, ContractError, decode, encode, make_event
from .events import EVENT_TYPES, EVENTS_BY_TYPE, EventData

__all__ = [
    "COMMANDS",
    "CONTENT_TYPE",
    "EVENTS_BY_TYPE",
    "EVENT_TYPES",
    "CloudEvent",
    "ContractError",
    "EventData",
    "command_message_union",
    "decode",
    "encode",
    "make_event",
]
