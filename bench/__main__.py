"""`make bench`: run every benchmark on infrastructure of its own (a throwaway Kafka
broker and a fresh database on the local PostgreSQL), so nothing it sends lands in the
`make run` stack; print each figure beside its target. Exit 1 when a target is not met.

    python -m bench                      every benchmark, in BENCHMARKS' order
    python -m bench stats_rebuild ...    only those (modules of this package with main())
"""

from __future__ import annotations

import importlib
import os
import sys

from bench.stack import isolated_infrastructure

BENCHMARKS = ["intake_commands", "kafka_commands", "freshness", "stats_rebuild", "stats_scale_out"]


def main(names: list[str]) -> int:
    unknown = [n for n in names if not (os.path.exists(os.path.join(os.path.dirname(__file__), f"{n}.py")))]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2
    benchmarks = [importlib.import_module(f"bench.{name}").main for name in names or BENCHMARKS]
    with isolated_infrastructure() as (bootstrap, database_url):
        os.environ.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, DATABASE_URL=database_url)
        failures = sum(benchmark() != 0 for benchmark in benchmarks)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
