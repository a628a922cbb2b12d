"""The CloudEvents 1.0 envelope (structured JSON mode) and how events are encoded and read.

Context attributes may be logged by any intermediary (CloudEvents privacy section), so
`subject` is an opaque UUID and the extension attributes are opaque tokens.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from typing_extensions import NotRequired, TypedDict  # pydantic needs this TypedDict before 3.12

from .commands import COMMAND_MESSAGES
from .events import EVENTS_BY_TYPE, EventData
from .privacy import SEALED, SEALED_LENGTH, SEALED_PATTERN, personal_fields, redacted, split
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


# Sealing is the services' (they hold the keys); the contracts say what is sealed and how a
# reader gets the fields back. A Sealer turns an event's personal fields (JSON) into the
# `sealed` string; an Unsealer gives them back, or None when the household's key was
# destroyed (erased): the event then reads with those fields None.
Sealer = Callable[[EventData, bytes, dict[str, Any]], str]
# (household id, the sealed string, associated data) -> the personal fields as JSON (bytes)
# or as a dict, or None.
Unsealer = Callable[[Any, str, bytes], "bytes | dict[str, Any] | None"]


def associated_data(event_type: str, event_id: UUID | str) -> bytes:
    """What a sealed field is bound to: it cannot be moved to another event unnoticed
    (the event's type, "/", and its id's 16 bytes)."""
    return event_type.encode() + b"/" + (event_id if isinstance(event_id, UUID) else UUID(event_id)).bytes


def make_event(
    data: EventData,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: UUID | None = None,
    time: datetime | None = None,
    seal: Sealer | None = None,
) -> CloudEvent:
    """The event of `data`; with `seal`, its personal fields travel sealed."""
    event_id = event_id or uuid4()
    body = data.model_dump(mode="json")
    if seal is not None and personal_fields(type(data)):
        clear, personal = split(type(data), body)
        body = {**clear, SEALED: seal(data, associated_data(data.type, event_id), personal)}
    return CloudEvent(
        id=event_id,
        source=f"/alfi/{data.service}",
        type=data.type,
        time=time or datetime.now(UTC),
        subject=UUID(data.subject),
        dataschema=dataschema_for(data.type, data.version),
        correlationid=correlation_id,
        causationid=causation_id,
        data=body,
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


# ---------------------------------------------------------------- errors that never echo input
#
# A validation error is told as a JSON pointer and a message, to an HTTP client, in a
# dead-letter header, in a log. Neither may quote the input, which may be special-category
# personal data: the pointer holds only the contracts' field names and list positions (a
# key from the input - an unknown field, a free dict's key - ends it), unknown fields are
# counted under their parent, never named, and the message is pydantic's only for the
# error types whose message cannot hold input; every other type has a fixed one.


class FieldProblem(BaseModel):
    """One thing wrong with a message, safe to show anyone."""

    model_config = ConfigDict(frozen=True)

    pointer: str  # RFC 6901, "/" for the whole message: "/reviewed/0/decision"
    message: str
    unknown_fields: int = 0  # > 0: this many unknown fields in the object at `pointer`


def _property_names(schema: Any) -> set[str]:  # noqa: ANN401 - any part of a JSON Schema
    if isinstance(schema, list):
        return {name for part in schema for name in _property_names(part)}
    if not isinstance(schema, dict):
        return set()
    return set(schema.get("properties", ())).union(*map(_property_names, schema.values()))


# Every field name of every envelope, event and command message, nested models included.
_FIELD_NAMES = frozenset(
    name for model in (CloudEvent, *EVENTS_BY_TYPE.values(), *COMMAND_MESSAGES.values())
    for name in _property_names(model.model_json_schema())
)
# What pydantic puts in `loc` for the member of a tagged union: not part of the document.
_UNION_TAGS = frozenset(COMMAND_MESSAGES) | frozenset(EVENTS_BY_TYPE)

# Error types whose pydantic message says what is expected from the schema alone (the
# allowed values, the pattern, the bounds), never what was given.
_MESSAGE_FROM_SCHEMA = frozenset({
    "missing", "model_type", "model_attributes_type", "dict_type", "list_type", "tuple_type",
    "set_type", "frozen_set_type", "iterable_type", "none_required", "json_type",
    "string_type", "string_unicode", "string_not_ascii", "string_too_short", "string_too_long",
    "string_pattern_mismatch", "enum", "literal_error", "bool_type", "bool_parsing",
    "int_type", "int_parsing", "int_parsing_size", "int_from_float", "float_type", "float_parsing",
    "finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "multiple_of", "too_short", "too_long", "uuid_type", "uuid_version", "date_type",
    "date_from_datetime_inexact", "datetime_type", "timezone_aware", "timezone_naive",
    "frozen_field", "frozen_instance", "recursion_loop",
    "iso_date",  # vocabulary.IsoDate's own error, a fixed message
})
_DATE = "must be a calendar date YYYY-MM-DD"
_DATETIME = "must be a date and time with its UTC offset (RFC 3339)"
# Error types whose pydantic message (or context) may quote the input.
_FIXED_MESSAGES = {
    "uuid_parsing": "must be a UUID",  # "... found `J` at 1"
    "json_invalid": "is not valid JSON",
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "datetime_object_invalid": _DATETIME,
    "union_tag_not_found": "Field required",
}
# What the contracts' own validators raise (vocabulary.py, events.py): fixed text. Any
# other value_error (one that might format the value) is told as "is not valid".
_VALIDATOR_MESSAGES = frozenset({
    "must be an ISO date YYYY-MM-DD", "must be an ISO date YYYY-MM-DD, not a number",
    "must not repeat a value", "a meeting reviews each situation once",
})


def _pointer(loc: tuple[str | int, ...], names: frozenset[str]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(str(part))
        elif part in names:
            parts.append(part)
        elif part not in _UNION_TAGS:
            break  # a key from the input: neither it nor what is below it is told
    return "/" + "/".join(parts)


def _message(error: Any) -> str:  # noqa: ANN401 - one of ValidationError.errors()
    kind, context = error["type"], error.get("ctx") or {}
    if kind in _MESSAGE_FROM_SCHEMA:
        return error["msg"]
    if kind == "union_tag_invalid":  # "Input tag 'xyz' found using..." names the given tag
        what = "commands" if context.get("discriminator") == "'command'" else "values"
        return f"must be one of the known {what}: {context.get('expected_tags', '')}"
    if kind == "value_error" and error["msg"].removeprefix("Value error, ") in _VALIDATOR_MESSAGES:
        return error["msg"].removeprefix("Value error, ")
    return _FIXED_MESSAGES.get(kind, "is not valid")


def field_problems(errors: list[ErrorDetails], known: frozenset[str] = frozenset()) -> list[FieldProblem]:
    """`ValidationError.errors()` as problems that never quote the input. `known`: names
    besides the contracts' fields that may appear in a pointer (an HTTP route's query or
    path parameters: they come from the code, not from the request)."""
    names = _FIELD_NAMES | known
    found: dict[tuple[str, str], int] = {}  # (pointer, message) -> unknown fields counted
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            parent = (_pointer(loc[:-1], names), "")
            found[parent] = found.get(parent, 0) + 1
            continue
        pointer = "/" if error["type"] == "json_invalid" else _pointer(loc, names)
        if error["type"].startswith("union_tag_"):  # about the discriminator field ("command")
            field = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
            pointer = f"{pointer.rstrip('/')}/{field}" if field in names else pointer
        found.setdefault((pointer, _message(error)), 0)
    return [
        FieldProblem(pointer=pointer, message=message or f"{count} unknown field{'' if count == 1 else 's'}",
                     unknown_fields=count)
        for (pointer, message), count in found.items()
    ]


def describe(error: ValidationError) -> str:
    """The problems as one line (dead-letter headers, ContractError): pointers and
    messages only, never the offending input, which may be personal."""
    return "; ".join(f"{p.pointer}: {p.message}" for p in field_problems(error.errors()))


def _as_fields(model: type[BaseModel], only: tuple[str, ...] | None = None, **replaced: Any) -> type:  # noqa: ANN401
    """A TypedDict of the model's fields (`only` those, if given) with their constraints
    and validators: the same validation, giving a dict instead of an instance (a frozen
    model instance per event and per envelope was a third of the stats consumer's
    validation). Nested models stay models."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if only is not None and name not in only:
            continue
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    fields.update(replaced)
    fields_of = TypedDict(f"{model.__name__}Fields", fields)  # type: ignore[misc]
    fields_of.__pydantic_config__ = model.model_config  # type: ignore[attr-defined]
    return fields_of


_Sealed = Annotated[str, StringConstraints(pattern=SEALED_PATTERN.pattern, min_length=SEALED_LENGTH[0],
                                           max_length=SEALED_LENGTH[1])]


def _wire_fields(model: type[EventData]) -> type:
    """An event's data as it travels: the personal fields sealed in one string."""
    personal = personal_fields(model)
    if not personal:
        return _as_fields(model)
    clear = tuple(name for name in model.model_fields if name not in personal)
    return _as_fields(model, clear, **{SEALED: _Sealed})


def _current_fields(model: type[EventData]) -> type:
    """The envelope of one event type at its current version, with `data` typed."""
    return _as_fields(
        CloudEvent,
        type=Literal[model.type],
        source=Literal[f"/alfi/{model.service}"],
        dataschema=Literal[dataschema_for(model.type, model.version)],
        data=_wire_fields(model),
    )


# The fast path: pydantic-core parses and validates the whole event in one pass, choosing
# the type by its `type`. Anything it refuses (an older version, an event written before
# personal fields were sealed, an error) takes the general path, which upcasts and says
# precisely what is wrong.
_CURRENT = TypeAdapter(Annotated[
    Union[tuple(_current_fields(m) for m in EVENTS_BY_TYPE.values())],  # noqa: UP007
    Field(discriminator="type"),
])
_SUBJECTS = {model.type: model.subject_field for model in EVENTS_BY_TYPE.values()}
# The personal fields of each type, validated once opened.
_PERSONAL = {model.type: TypeAdapter(_as_fields(model, personal_fields(model)))
             for model in EVENTS_BY_TYPE.values() if personal_fields(model)}


def _opened(event_type: str, event_id: Any, data: dict[str, Any], unseal: Unsealer | None) -> dict[str, Any] | None:  # noqa: ANN401
    """The personal fields of `data` (which holds `sealed`), validated; None when there is
    no unsealer or the household's key is gone."""
    sealed = data.pop(SEALED)
    if unseal is None:
        return None
    household = data.get("household_id")
    if household is None:
        raise ContractError("invalid_data", "a sealed event names its household_id")
    personal = unseal(household, sealed, associated_data(event_type, event_id))
    if personal is None:
        return None
    try:
        if isinstance(personal, (bytes, str)):
            return _PERSONAL[event_type].validate_json(personal)
        return _PERSONAL[event_type].validate_python(personal)
    except ValidationError as error:
        raise ContractError("invalid_data", "sealed: " + describe(error)) from None


def read(raw: bytes | str, unseal: Unsealer | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """For consumers that fold many events: `decode`'s validation, with the envelope's
    context attributes and the data's fields (at the current version) as dicts. Optional
    attributes the event does not carry are absent from the envelope; personal fields
    that cannot be opened (no unsealer, key destroyed) are None."""
    try:
        event = _CURRENT.validate_json(raw)
    except ValidationError:
        pass
    else:
        data = event.pop("data")
        if event["subject"] == data[_SUBJECTS[event["type"]]]:
            if SEALED in data:
                personal = _opened(event["type"], event["id"], data, unseal)
                data.update(personal or dict.fromkeys(personal_fields(EVENTS_BY_TYPE[event["type"]])))
            return event, data
    envelope, model = decode(raw, unseal)
    return envelope.model_dump(exclude={"data"}, exclude_unset=True), dict(model)


def decode(raw: bytes | str | dict[str, Any], unseal: Unsealer | None = None) -> tuple[CloudEvent, EventData]:
    """Read an event of any known version; its data comes back at the current version,
    its sealed personal fields opened by `unseal` (or None, when they cannot be)."""
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
        raise ContractError("unknown_type", "/type: not an event type this reader knows")  # never the given one
    fields, target = envelope.data, model
    if SEALED in fields:
        sealed = fields[SEALED]
        if not isinstance(sealed, str) or not SEALED_PATTERN.match(sealed) or not (
                SEALED_LENGTH[0] <= len(sealed) <= SEALED_LENGTH[1]):
            raise ContractError("invalid_data", f"/{SEALED}: not a sealed value")
        in_clear = [name for name in personal_fields(model) if name in fields]
        if in_clear or not personal_fields(model):
            # Sealed fields beside clear ones would read as the household's once its key
            # is gone; and a type with nothing personal has nothing to seal.
            raise ContractError("invalid_data", f"/{SEALED}: personal fields travel only sealed"
                                if in_clear else f"/{SEALED}: {envelope.type} has no personal field")
        fields = dict(fields)
        personal = _opened(envelope.type, envelope.id, fields, unseal)
        if personal is None:
            target = redacted(model)
        else:
            fields.update(personal)
    try:
        data = target.model_validate(
            upcast(envelope.type, envelope.schema_version, model.version, fields)
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
