"""`make chaos` (`python -m chaos`): fault injection on a stack of its own, then the checks.

    make chaos                              single broker: 55 service kills, 5 broker
                                            outages, 2 PostgreSQL crashes over 330 s
    make chaos CHAOS_ARGS="--cluster"       three brokers (RF 3, min ISR 2): 10 node kills
    make chaos CHAOS_ARGS="--seed 7 --kills 80 --duration 400"

Every option also reads CHAOS_<NAME> from the environment (CHAOS_SEED=7). The services'
logs are kept in .local/chaos/logs/. Exit 1 when a fact is lost or doubled, a figure or a
projection row is inexact, a command was refused, a dead letter appeared, the stack did
not settle, or an HTTP 5xx other than 503 was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from .run import Options, run

REPO = Path(__file__).resolve().parents[1]


def options(argv: list[str]) -> Options:
    defaults = Options()

    def env(name: str, default: object) -> object:
        return os.environ.get(f"CHAOS_{name.upper()}", default)

    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=env("seed", defaults.seed))
    parser.add_argument("--duration", type=float, default=env("duration", defaults.duration),
                        help="seconds of load and faults (default %(default)s)")
    parser.add_argument("--kills", type=int, default=env("kills", defaults.kills), help="service kill -9s")
    parser.add_argument("--broker-outages", type=int, default=env("broker_outages", None),
                        help="broker kill -9s, or node kill -9s with --cluster (default 5, 10 with --cluster)")
    parser.add_argument("--pg-crashes", type=int, default=env("pg_crashes", defaults.pg_crashes))
    parser.add_argument("--cluster", action="store_true", default=bool(env("cluster", "")),
                        help="a three-broker KRaft cluster, replication factor 3, min.insync.replicas 2")
    parser.add_argument("--share", type=float, default=env("share", defaults.share),
                        help="share of the demo's households in the load (default %(default)s)")
    parser.add_argument("--kafka-share", type=float, default=env("kafka_share", defaults.kafka_share),
                        help="share of the command chains sent as Kafka commands (default %(default)s)")
    parser.add_argument("--logs", type=Path, default=env("logs", REPO / ".local" / "chaos" / "logs"))
    args = parser.parse_args(argv)
    outages = args.broker_outages if args.broker_outages is not None else (10 if args.cluster else 5)
    return Options(seed=int(args.seed), duration=float(args.duration), kills=int(args.kills),
                   broker_outages=int(outages), pg_crashes=int(args.pg_crashes), cluster=args.cluster,
                   share=float(args.share), kafka_share=float(args.kafka_share), logs=Path(args.logs))


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    chosen = options(argv)
    # A SIGTERM (make interrupted, CI's timeout) tears the stack down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupted)
    # The load's producer retries through every broker outage; its errors are counted in
    # the summary, not logged one by one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if chosen.logs is not None:
        for old in chosen.logs.glob("*.log"):  # this run's logs only
            old.unlink()
    report = asyncio.run(run(chosen, out=lambda line: print(line, flush=True)))
    print("\n".join(["", *report.details(), "", "== chaos summary ==", *report.summary()]), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
