"""`make bench`: run every benchmark on infrastructure of its own (a throwaway Kafka
broker and a fresh database on the local PostgreSQL), so nothing it sends lands in the
`make run` stack; print each figure beside its target. Exit 1 when a target is not met."""

from __future__ import annotations

import os
import sys

from bench import intake_commands, stats_rebuild
from bench.stack import isolated_infrastructure

BENCHMARKS = [intake_commands.main, stats_rebuild.main]


def main() -> int:
    with isolated_infrastructure() as (bootstrap, database_url):
        os.environ.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, DATABASE_URL=database_url)
        failures = sum(benchmark() != 0 for benchmark in BENCHMARKS)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
