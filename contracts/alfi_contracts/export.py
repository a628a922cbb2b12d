"""Export the contracts as JSON Schema files and an AsyncAPI 3.0 document.

    python -m alfi_contracts.export            # write contracts/schemas/ and asyncapi.json
    python -m alfi_contracts.export --check    # exit 1 when the files drift from the models

Written by hand because the AsyncAPI document describes topics and messages that no
single FastStream app owns (each service publishes one topic); the schemas themselves
come from pydantic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from .commands import command_message_union
from .envelope import CloudEvent, dataschema_for
from .events import EVENT_TYPES
from .privacy import CLASS_KEY, CLASSES, wire_schema
from .topics import PARTITIONS, SERVICES, commands_topic, dead_letter_topic, events_topic

ROOT = Path(__file__).resolve().parents[1]


def rendered(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[str, dict[str, Any]]:
    """Relative path under contracts/ -> JSON document."""
    out: dict[str, dict[str, Any]] = {
        "schemas/cloudevent.json": {
            "$id": "urn:alfi:schema:cloudevent",
            **CloudEvent.model_json_schema(),
        }
    }
    for model in EVENT_TYPES:
        schema = wire_schema(model)  # as it travels: personal fields sealed
        schema["$id"] = dataschema_for(model.type, model.version)
        schema["x-alfi-event-type"] = model.type
        schema["x-alfi-version"] = model.version
        out[f"schemas/events/{model.type}.v{model.version}.json"] = schema
    for service in SERVICES:
        schema = TypeAdapter(command_message_union(service)).json_schema()
        schema["$id"] = f"urn:alfi:schema:{service}.commands"
        out[f"schemas/commands/{service}.json"] = schema
    out["asyncapi.json"] = asyncapi(out)
    return out


def asyncapi(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for service in SERVICES:
        events = [m for m in EVENT_TYPES if m.service == service]
        channel = f"{service}Events"
        channels[channel] = {
            "address": events_topic(service),
            "description": f"Domain events of {service}, CloudEvents JSON, key = household id "
            f"(workshop or meeting id when there is none), {PARTITIONS} partitions.",
            "messages": {m.type.replace(".", "_"): {"$ref": f"#/components/messages/{m.type.replace('.', '_')}"} for m in events},
        }
        operations[f"publish{service.title()}Events"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
        }
        for model in events:
            messages[model.type.replace(".", "_")] = {
                "name": model.type,
                "contentType": "application/cloudevents+json",
                "payload": {
                    "allOf": [
                        {"$ref": "./schemas/cloudevent.json"},
                        {"properties": {"data": {"$ref": f"./schemas/events/{model.type}.v{model.version}.json"}}},
                    ]
                },
            }
        command_channel = f"{service}Commands"
        channels[command_channel] = {
            "address": commands_topic(service),
            "description": f'Commands to {service}: {{"command": name, "data": {{...}}}}. '
            f"Rejected ones go to {dead_letter_topic(commands_topic(service))}.",
            "messages": {f"{service}Command": {"$ref": f"#/components/messages/{service}Command"}},
        }
        operations[f"receive{service.title()}Commands"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{command_channel}"},
        }
        messages[f"{service}Command"] = {
            "name": f"{service}.command",
            "contentType": "application/json",
            "payload": {"$ref": f"./schemas/commands/{service}.json"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ALFI accompaniment platform",
            "version": "1.0.0",
            "description": "Topics of the social support pole's event platform. "
            "Pseudonymous ids only: no names, free text or contact details. Every field of every "
            f"event and command carries a class ({CLASS_KEY}: {', '.join(CLASSES)}); in events, the "
            "personal fields travel encrypted with the household's own key in `sealed`, which "
            "erasing the household makes unreadable everywhere (crypto-shredding).",
        },
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    drifted = []
    for relative, document in documents().items():
        path = ROOT / relative
        text = rendered(document)
        if check:
            if not path.exists() or path.read_text() != text:
                drifted.append(relative)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if drifted:
        print("out of date (run python -m alfi_contracts.export):", *drifted, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
