"""Kafka topic names. Key = household id (or workshop/meeting id when there is none)."""

SERVICES = ("intake", "casework", "veille")
PARTITIONS = 6

INTAKE_EVENTS = "alfi.intake.events"
CASEWORK_EVENTS = "alfi.casework.events"
VEILLE_EVENTS = "alfi.veille.events"


def events_topic(service: str) -> str:
    return f"alfi.{service}.events"


def commands_topic(service: str) -> str:
    return f"alfi.{service}.commands"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


# Headers a dead letter carries (the error travels in headers; the value is left as sent).
DLQ_ERROR_KIND = "alfi-error-kind"
DLQ_ERROR_DETAIL = "alfi-error-detail"
DLQ_SOURCE_TOPIC = "alfi-source-topic"
DLQ_SOURCE_PARTITION = "alfi-source-partition"
DLQ_SOURCE_OFFSET = "alfi-source-offset"
