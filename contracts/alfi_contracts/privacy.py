"""Every field of every event and command carries a class, and what the class means on the bus.

- `identifier`: a pseudonymous id (household, interview, situation...): travels in clear;
  it names no one without the upstream file that chose it.
- `public`: a fact about the service's activity that the published figures count
  (dates, programme, territory, workshop theme...): travels in clear and is kept after an
  erasure, still attached to the pseudonymous id.
- `personal`: what describes the people or their situation (composition, youth, DALO
  priority, referent, interview topics, situation reasons, landlord...): in an event, the
  personal fields travel encrypted with the household's own key, in one `sealed` field
  (AES-256-GCM; the services seal and open it, see services/common/keyring.py). Erasing
  the household destroys the key: every copy of its events (Kafka history, outbox, dead
  letters) becomes unreadable without rewriting any of them.

The class is declared with the field (`Annotated[bool, PERSONAL]`) and exported in the
JSON Schemas as `x-alfi-class`; tests/unit/test_contracts.py fails on a field without one.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Optional

from pydantic import BaseModel, Field, create_model

CLASS_KEY = "x-alfi-class"
IDENTIFIER, PUBLIC, PERSONAL_CLASS = "identifier", "public", "personal"
CLASSES = (IDENTIFIER, PUBLIC, PERSONAL_CLASS)

IDENTIFIER_FIELD = Field(json_schema_extra={CLASS_KEY: IDENTIFIER})
PUBLIC_FIELD = Field(json_schema_extra={CLASS_KEY: PUBLIC})
PERSONAL = Field(json_schema_extra={CLASS_KEY: PERSONAL_CLASS})

# The wire field that carries an event's personal fields, sealed: "v1.<base64url>" of a
# 12-byte nonce followed by the AES-256-GCM ciphertext and tag of their JSON.
SEALED = "sealed"
# (A bounded repetition in the pattern costs pydantic-core's regex 5 us a value; the
# length is checked apart.)
SEALED_PATTERN = re.compile(r"^v1\.[A-Za-z0-9_-]+$")
SEALED_LENGTH = (23, 65539)


def class_of(model: type[BaseModel], name: str) -> str | None:
    extra = model.model_fields[name].json_schema_extra
    return extra.get(CLASS_KEY) if isinstance(extra, dict) else None


@functools.cache
def personal_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The model's personal fields, in declaration order."""
    return tuple(name for name in model.model_fields if class_of(model, name) == PERSONAL_CLASS)


def unclassified(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Fields (nested models included) that declare no class."""
    missing = []
    for name, info in model.model_fields.items():
        if class_of(model, name) not in CLASSES:
            missing.append(f"{prefix}{name}")
        for nested in _nested_models(info.annotation):
            missing += unclassified(nested, f"{prefix}{name}.")
    return missing


def _nested_models(annotation: Any) -> list[type[BaseModel]]:  # noqa: ANN401
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _nested_models(arg)]


@functools.cache
def redacted(model: type[BaseModel]) -> type[BaseModel]:
    """The model with its personal fields optional (None): an event whose key was
    destroyed reads as this, its identifiers and public facts intact."""
    fields = personal_fields(model)
    if not fields:
        return model
    overrides: dict[str, Any] = {
        name: (Optional[model.model_fields[name].annotation], Field(None, json_schema_extra={CLASS_KEY: PERSONAL_CLASS}))  # noqa: UP007
        for name in fields
    }
    return create_model(f"{model.__name__}Redacted", __base__=model, **overrides)


def split(model: type[BaseModel], data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(clear, personal) parts of an event's JSON data."""
    personal = personal_fields(model)
    return ({k: v for k, v in data.items() if k not in personal},
            {k: v for k, v in data.items() if k in personal})


def wire_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of an event's data as it travels: its personal fields replaced by
    `sealed`; their schemas kept under `x-alfi-sealed-fields` for the reader who holds
    the key."""
    schema = model.model_json_schema()
    personal = personal_fields(model)
    if not personal:
        return schema
    properties = schema["properties"]
    schema["x-alfi-sealed-fields"] = {name: properties.pop(name) for name in personal}
    properties[SEALED] = {
        "type": "string", "pattern": SEALED_PATTERN.pattern, "minLength": SEALED_LENGTH[0],
        "maxLength": SEALED_LENGTH[1], CLASS_KEY: PERSONAL_CLASS,
        "description": "The personal fields (x-alfi-sealed-fields) as JSON, encrypted with the"
                       " household's key (AES-256-GCM, 12-byte nonce first, base64url after 'v1.'),"
                       " authenticated with the event's type and id. Unreadable once the household"
                       " is erased.",
    }
    schema["required"] = [name for name in schema.get("required", []) if name not in personal] + [SEALED]
    return schema
