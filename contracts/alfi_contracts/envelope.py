"""The CloudEvents 1.0 envelope (structured JSON mode) and how events are encoded and read.

Context attributes may be logged by any intermediary (CloudEvents privacy section), so
`subject` is an opaque UUID and the extension attributes are opaque tokens.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict  # pydantic needs this TypedDict before 3.12

from .events import EVENTS_BY_TYPE, EventData
from .upcasting import UnknownVersion, upcast

CONTENT_TYPE = "application/cloudevents+json"
DATASCHEMA_PREFIX = "urn:alfi:schema:"
# A version is at most 6 digits: a longer one is refused as invalid, not converted (an int
# of 5,000 digits raises ValueError past Python's 4,300-digit limit).
_DATASCHEMA = re.compile(r"^urn:alfi:schema:(?P<type>[a-z_]+\.[a-z_]+):v(?P<version>[0-9]{1,6})$")

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


def _as_fields(model: type[BaseModel], **replaced: Any) -> type:  # noqa: ANN401
    """A TypedDict of the model's fields with their constraints and validators: the same
    validation, giving a dict instead of an instance (a frozen model instance per event
    and per envelope was a third of the stats consumer's validation). Nested models
    stay models."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    fields.update(replaced)
    fields_of = TypedDict(f"{model.__name__}Fields", fields)  # type: ignore[misc]
    fields_of.__pydantic_config__ = model.model_config  # type: ignore[attr-defined]
    return fields_of


def _current_fields(model: type[EventData]) -> type:
    """The envelope of one event type at its current version, with `data` typed."""
    return _as_fields(
        CloudEvent,
        type=Literal[model.type],
        source=Literal[f"/alfi/{model.service}"],
        dataschema=Literal[dataschema_for(model.type, model.version)],
        data=_as_fields(model),
    )


# The fast path: pydantic-core parses and validates the whole event in one pass, choosing
# the type by its `type`. Anything it refuses (an older version, an error) takes the
# general path, which upcasts and says precisely what is wrong.
_CURRENT = TypeAdapter(Annotated[
    Union[tuple(_current_fields(m) for m in EVENTS_BY_TYPE.values())],  # noqa: UP007
    Field(discriminator="type"),
])
_SUBJECTS = {model.type: model.subject_field for model in EVENTS_BY_TYPE.values()}


def read(raw: bytes | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """For consumers that fold many events: `decode`'s validation, with the envelope's
    context attributes and the data's fields (at the current version) as dicts. Optional
    attributes the event does not carry are absent from the envelope."""
    try:
        event = _CURRENT.validate_json(raw)
    except ValidationError:
        pass
    else:
        data = event.pop("data")
        if event["subject"] == data[_SUBJECTS[event["type"]]]:
            return event, data
    envelope, model = decode(raw)
    return envelope.model_dump(exclude={"data"}, exclude_unset=True), dict(model)


def decode(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, EventData]:
    """Read an event of any known version; its data comes back at the current version."""
    try:
        body = raw if isinstance(raw, dict) else json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        # RecursionError: JSON nested deeper than the parser's stack (`[` * 5000).
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
