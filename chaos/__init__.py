"""`make chaos`: a fault-injection run on the real local stack.

The platform's guarantees (DESIGN.md, "Delivery guarantees") checked while things break:
a seeded load of commands goes through the public HTTP APIs and the Kafka command topics
while services are killed with -9, the broker (or one node of a three-broker cluster) is
killed and restarted, and PostgreSQL crashes (immediate stop). Once everything has
settled, every report figure must equal what the accepted commands imply, and every
accepted fact must be on the event topics exactly once.

- `stack.py`: infrastructure of the run's own (broker or cluster, PostgreSQL, ports) and
  the four services as supervised processes;
- `load.py`: the commands (demo/dataset.py's realistic 2022-2024, scaled down), their
  order, and the HTTP and Kafka clients that send them and count every answer;
- `faults.py`: the seeded fault schedule and the task that carries it out;
- `verify.py`: waiting until the stack has settled, then the checks;
- `run.py`: one run, start to summary (what `python -m chaos` and the e2e test call).
"""
