"""`make bench`: start the local infrastructure if needed, run every benchmark, print
each figure beside its target. Exit 1 when a target is not met."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import intake_commands
from bench.stack import REPO

BENCHMARKS = [intake_commands.main]


def main() -> int:
    env = subprocess.run([sys.executable, str(REPO / "deploy/local/devstack.py"), "env"],
                         check=True, capture_output=True, text=True).stdout
    for line in env.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ[name] = value
    failures = sum(benchmark() != 0 for benchmark in BENCHMARKS)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
