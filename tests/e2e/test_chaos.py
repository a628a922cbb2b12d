"""A short `make chaos` run, in process: the same load, faults and checks (chaos/) on a
stack of its own, on ports nothing else in the suite uses."""

from __future__ import annotations

from chaos.run import Options, run
from chaos.stack import Ports

PORTS = Ports(broker=19692, cluster=(29492, 29494, 29496), postgres=55732,
              services={"intake": 18211, "casework": 18212, "veille": 18213, "stats": 18214})


async def test_services_broker_and_postgres_crashing_under_load_lose_nothing(tmp_path):
    """6 service kills, a broker kill -9 and a PostgreSQL crash under about 800
    commands: every figure exact, no fact lost or doubled, no 500."""
    options = Options(seed=11, duration=75, kills=6, broker_outages=1, pg_crashes=1, share=0.04,
                      settle_timeout=90, ports=PORTS, logs=tmp_path)
    report = await run(options)
    told = "\n".join([*report.details(), *report.summary()])
    print(told)
    findings = report.findings
    assert report.faults.done == {"service": 6, "broker": 1, "postgres": 1}, told
    assert report.settled, told
    assert findings.lost == [] and findings.doubled == [] and findings.unexpected == [], told
    assert findings.figures_total > 0 and findings.figures_exact == findings.figures_total, told
    assert findings.rows_exact == findings.rows_total, told
    assert report.server_errors == 0, told
    assert report.ok, told


def test_the_checker_tells_lost_doubled_and_unexpected_facts_from_republished_ones():
    """The checks can fail: one fact missing, one published under two ids, one nobody
    asked for; the same id twice is a harmless republish."""
    import uuid

    from chaos.load import plan
    from chaos.verify import Findings, compare_facts, expected_events, fact

    commands = plan(seed=5, share=0.02, kafka_share=0.3)
    for command in commands:
        command.accepted = True
    implied = expected_events(commands)
    published = [(uuid.uuid4(), data) for _, data in implied]
    _, lost = published.pop(10)
    _, doubled = published[20]
    published.append((uuid.uuid4(), doubled))  # a second event for the same fact
    published.append(published[30])  # the same event again
    interview = next(data for _, data in implied if data.type == "interview.held")
    published.append((uuid.uuid4(), interview.model_copy(update={"interview_id": uuid.uuid4()})))

    findings = Findings()
    compare_facts(implied, published, findings)
    assert findings.lost == [fact(lost)] and findings.doubled == [fact(doubled)]
    assert len(findings.unexpected) == 1 and findings.republished == 1
    assert not findings.ok
