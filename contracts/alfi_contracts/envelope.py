"""The CloudEvents 1.0 envelope (structured JSON mode) and how events are encoded and read.

Context attributes may be logged by any intermediary (CloudEvents privacy section), so
`subject` is an opaque UUID and the extension attributes are opaque tokens.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from typing import Union

from pydantic import (
    AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, create_model,
)

from .events import EVENTS_BY_TYPE, EventData
from .upcasting import UnknownVersion, upcast

CONTENT_TYPE = "application/cloudevents+json"
DATASCHEMA_PREFIX = "urn:alfi:schema:"
_DATASCHEMA = re.compile(r"^urn:alfi:schema:(?P<type>[a-z_]+\.[a-z_]+):v(?P<version>[0-9]+)$")

Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]


def dataschema_for(event_type: str, version: int) -> str:
    return f"{DATASCHEMA_PREFIX}{event_type}:v{version}"


class CloudEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: UUID
    source: Annotated[str, StringConstraints(pattern=r"^/alfi/(intake|casework|veille)$")]
    type: Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z_]+$")]
    time: AwareDatetime
    subject: UUID
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: Annotated[str, StringConstraints(pattern=_DATASCHEMA.pattern)]
    correlationid: Token | None = None
    causationid: Token | None = None
    data: dict[str, Any]

    @property
    def schema_version(self) -> int:
        match = _DATASCHEMA.match(self.dataschema)
        assert match  # guaranteed by the field's pattern
        return int(match["version"])


def make_event(
    data: EventData,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: UUID | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    return CloudEvent(
        id=event_id or uuid4(),
        source=f"/alfi/{data.service}",
        type=data.type,
        time=time or datetime.now(UTC),
        subject=UUID(data.subject),
        dataschema=dataschema_for(data.type, data.version),
        correlationid=correlation_id,
        causationid=causation_id,
        data=data.model_dump(mode="json"),
    )


def encode(event: CloudEvent) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


class ContractError(ValueError):
    """Why a message could not be read. `kind` is a closed label, safe for metrics."""

    KINDS = ("undecodable", "invalid_envelope", "unknown_type", "unknown_version", "invalid_data")

    def __init__(self, kind: str, detail: str) -> None:
        assert kind in self.KINDS
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def describe(error: ValidationError) -> str:
    """Field paths and messages only: never the offending input, which may be personal."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in error.errors()
    )


def _typed_envelope(model: type[EventData]) -> type[CloudEvent]:
    """The envelope of one event type at its current version, with `data` typed."""
    return create_model(
        f"{model.__name__}Envelope", __base__=CloudEvent,
        type=(Literal[model.type], ...),  # type: ignore[valid-type]
        dataschema=(Literal[dataschema_for(model.type, model.version)], ...),  # type: ignore[valid-type]
        data=(model, ...),
    )


# The fast path: pydantic-core parses and validates the whole event in one pass, choosing
# the type by its `type`. Anything it refuses (an older version, an error) takes the
# general path below, which upcasts and says precisely what is wrong.
_SOURCES = {model.type: f"/alfi/{model.service}" for model in EVENTS_BY_TYPE.values()}
_ENVELOPE_FIELDS = [name for name in CloudEvent.model_fields if name != "data"]
_CURRENT = TypeAdapter(Annotated[
    Union[tuple(_typed_envelope(m) for m in EVENTS_BY_TYPE.values())],  # noqa: UP007
    Field(discriminator="type"),
])


def read(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, EventData]:
    """Like `decode`, for hot consumers: the envelope's context attributes and the data
    at the current version. The envelope's own `data` may be the typed model rather than
    a dict: use the second element."""
    if not isinstance(raw, dict):
        try:
            typed = _CURRENT.validate_json(raw)
        except ValidationError:
            pass
        else:
            data = typed.data
            if typed.subject == getattr(data, data.subject_field) and typed.source == _SOURCES[data.type]:
                return typed, data
    return _decode_any_version(raw)


def decode(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, EventData]:
    """Read an event of any known version; its data comes back at the current version."""
    envelope, data = read(raw)
    if type(envelope) is not CloudEvent:  # the fast path's typed envelope
        fields = {name: getattr(envelope, name) for name in _ENVELOPE_FIELDS}
        envelope = CloudEvent.model_construct(**fields, data=data.model_dump(mode="json"))
    return envelope, data


def _decode_any_version(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, EventData]:
    try:
        body = raw if isinstance(raw, dict) else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ContractError("undecodable", f"not JSON: {type(error).__name__}") from None
    if not isinstance(body, dict):
        raise ContractError("undecodable", "a CloudEvent is a JSON object")
    try:
        envelope = CloudEvent.model_validate(body)
    except ValidationError as error:
        raise ContractError("invalid_envelope", describe(error)) from None
    model = EVENTS_BY_TYPE.get(envelope.type)
    if model is None:
        raise ContractError("unknown_type", f"no event type {envelope.type!r}")
    try:
        data = model.model_validate(
            upcast(envelope.type, envelope.schema_version, model.version, envelope.data)
        )
    except UnknownVersion as error:
        raise ContractError("unknown_version", str(error)) from None
    except ValidationError as error:
        raise ContractError("invalid_data", describe(error)) from None
    if str(envelope.subject) != data.subject:
        raise ContractError("invalid_envelope", f"subject is not the event's {data.subject_field}")
    if envelope.source != f"/alfi/{model.service}":
        raise ContractError("invalid_envelope", f"{envelope.type} comes from /alfi/{model.service}")
    return envelope, data
