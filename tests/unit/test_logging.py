"""aiokafka's passing cluster states are warnings; real failures stay errors."""

from __future__ import annotations

import logging

import pytest

from services.common.logging import TransientKafkaErrors


def record(name: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, ("x",), None)


@pytest.mark.parametrize("message", [
    "Group Coordinator Request failed: %s", "Unable connect to %s", "Error sending %s to node %s [%s] -- x",
    "Failed fetch messages from %s: %s", "Heartbeat failed: %r",
])
def test_transient_kafka_errors_become_warnings(message):
    line = record("aiokafka.consumer.group_coordinator", message)
    assert TransientKafkaErrors().filter(line) and line.levelno == logging.WARNING and line.levelname == "WARNING"


@pytest.mark.parametrize("name, message", [
    ("aiokafka.consumer.group_coordinator", "Unexpected error in coordinator routine"),
    ("alfi.consumer", "Group Coordinator Request failed: %s"),  # only aiokafka's own lines
])
def test_other_errors_stay_errors(name, message):
    line = record(name, message)
    assert TransientKafkaErrors().filter(line) and line.levelno == logging.ERROR
