"""Bus projections: the consultation bus's facts and the messages they answer in PostgreSQL, queried and printed.

The bus's facts are input data here (decided by its pure core, as the worker would, and published with the
messages), except in the last test, where the real bus worker decides them.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from agentlog import events as ev
from agentlog.cli.main import app
from agentlog.events import Event
from agentlog.processors.testing import admitted_tree
from agentlog.projections import audit_chain, drop_schema
from agentlog.projections.batch import PartitionState, build_batch
from agentlog.projections.bus import Bus, UnknownTreeError
from agentlog.projections.bus_render import decision_log_markdown, md
from agentlog.projections.checksums import table_checksums
from agentlog.projections.errors import StalePositionsError
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import ProjectorStats
from agentlog.projections.roles import RoleKind, create_role, use_login_scope
from agentlog.projections.writer import BatchWriter
from agentlog.records import Record
from agentlog.replay.topic_reader import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings, get_settings
from agentlog.topics import MESSAGE_EVENTS, key_of, topic_of
from tests.bus_scenarios import Bus as Feed
from tests.bus_scenarios import bus_policy

ROOT = "acme/release-7"
OTHER = "globex/tree-1"
_BUS_TABLES = ("message_posts", "message_states", "message_deliveries")
_VIEWS = ("messages", "questions", "decisions")
PASSWORD = "bus-reader-1"


@dataclass
class Story:
    """What the scenario sent, by name, and every event to publish (inputs, the bus's facts, acknowledgements)."""

    events: list[Event] = field(default_factory=list)
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    at: dict[str, datetime] = field(default_factory=dict)


def _ack(feed: Feed, message_id: uuid.UUID, agent: str, tenant: str | None = None) -> ev.MessageAcknowledged:
    return ev.MessageAcknowledged(meta=feed.meta(tenant), message_id=message_id, agent_id=agent)


def _release() -> Story:
    """One tree's bus: a request answered, one expired, a question escalated and decided, one escalated and
    expired, one decided after a refused and before a late decision, an alert, a handoff, refusals, open questions,
    and a message the bus has not answered yet."""
    story, feed = Story(), Feed(ROOT, policy=bus_policy(bus_rate_per_agent=50))
    facts, later, ids, at = story.events, [], story.ids, story.at

    def soon(seconds: float) -> datetime:
        return feed.now + timedelta(seconds=seconds)

    for agent, parent in (("planner", None), ("coder", None), ("tester", "planner")):
        feed.spawn(agent, parent)
    ids["summary"], out = feed.request(
        "coder", "planner", subject="Summarise the failing tests", priority=ev.Priority.HIGH, reply_by=soon(300)
    )
    facts += out
    later.append(_ack(feed, ids["summary"], "planner"))
    facts += feed.reply("planner", ids["summary"], "3 flaky, 1 real")
    ids["review"], out = feed.request("planner", "coder", subject="Review PR 12", reply_by=soon(30))
    facts += out
    later.append(_ack(feed, ids["review"], "coder", tenant="globex"))  # another tenant's claim: never counts
    question = "Which database should the service use?"
    ids["database"], out = feed.ask("tester", question=question, options=["PostgreSQL", "SQLite"], decide_by=soon(60))
    facts += out
    facts += feed.tick(soon(61))  # the review expires, the question goes up a level
    facts += feed.decide(
        ROOT,
        ids["database"],
        "PostgreSQL",
        rationale="We need concurrent writers | and <backups>",
        impact="one more service to run",
        impact_details={"cost": "+1 VM", "risk": "low"},
    )
    at["database decided"] = feed.now
    ids["friday"], out = feed.ask("tester", "planner", question="Ship on Friday?", decide_by=soon(30))
    facts += out
    facts += feed.tick(soon(31))
    facts += feed.tick(soon(31))  # at the root: expired
    facts += feed.decide(ROOT, ids["friday"], "yes")  # too late: EXPIRED
    ids["cache"], out = feed.ask("coder", "planner", question="Use the shared cache?", options=["yes", "no"])
    facts += out
    facts += feed.decide("tester", ids["cache"], "no")  # NOT_ALLOWED
    facts += feed.decide("planner", ids["cache"], "yes", rationale="cuts build time", impact="faster CI")
    facts += feed.decide(ROOT, ids["cache"], "no")  # ALREADY_ANSWERED
    facts += feed.alert("planner", "Disk almost full on the build host", priority=ev.Priority.CRITICAL)
    ids["alert"] = facts[-1].message_id  # type: ignore[attr-defined]
    later.append(_ack(feed, ids["alert"], "coder"))
    facts += feed.handoff("planner", "coder")
    facts += feed.request("coder", "ghost", subject="Anyone there?")[1]  # UNKNOWN_RECIPIENT
    facts += feed.request("coder", "planner", subject="Let me in", tenant="globex")[1]  # TENANT_MISMATCH
    ids["budget"], out = feed.ask("planner", ROOT, question="Raise the token budget?", decide_by=soon(10**8))
    facts += out
    ids["retry"], out = feed.ask("tester", "planner", question="Retry the flaky suite?", decide_by=soon(10))
    facts += out  # never ticked: open past its deadline
    unanswered = ev.AgentRequest(
        meta=feed.meta(), message_id=feed.message_id(), from_agent_id="planner", to_agent_id="coder", subject="Still?"
    )
    ids["unanswered"] = unanswered.message_id
    at["end"] = feed.now
    story.events = [e for e, _ in feed.inputs] + facts + later + [unanswered]
    return story


def _other_tenant() -> Story:
    story, feed = Story(), Feed(OTHER, tenant="globex")
    feed.spawn("g1")
    story.ids["q"], out = feed.ask("g1", question="globex's secret question?")
    story.events += out + feed.decide(OTHER, story.ids["q"], "globex's secret choice")
    story.events = [e for e, _ in feed.inputs] + story.events
    return story


@pytest.fixture
def story(publish: Callable[[list[Event]], None], project: Callable[..., ProjectorStats]) -> Story:
    """Two tenants' trees, their messages and the bus's facts, published and projected."""
    release, other = _release(), _other_tenant()
    publish(release.events + other.events)
    project()
    return release


def _by_id(messages: list[Any]) -> dict[uuid.UUID, list[Any]]:
    found: dict[uuid.UUID, list[Any]] = {}
    for m in messages:
        found.setdefault(m.message_id, []).append(m)
    return found


def test_messages_carry_the_answer_the_outcome_and_the_delivery(db: psycopg.Connection[Any], story: Story) -> None:
    messages = Bus(db).messages(ROOT)
    by_id, ids = _by_id(messages), story.ids
    (summary,) = by_id[ids["summary"]]
    assert (summary.state, summary.replies, summary.priority, summary.summary) == (
        "replied", 1, "HIGH", "Summarise the failing tests"
    )  # fmt: skip
    assert [(d.agent_id, d.acknowledged_at is not None) for d in summary.deliveries] == [("planner", True)]
    (review,) = by_id[ids["review"]]
    assert (review.state, review.closed_at is not None, review.acknowledged_by) == ("expired", True, [])
    (database,) = by_id[ids["database"]]
    assert (database.state, database.escalation_level, database.recipient, database.decided_by) == (
        "decided", 1, ROOT, ROOT
    )  # fmt: skip
    assert [d.agent_id for d in database.deliveries] == ["planner", ROOT]  # asked to the parent, escalated
    (friday,) = by_id[ids["friday"]]
    assert (friday.state, friday.escalation_level) == ("expired", 1)
    (alert,) = by_id[ids["alert"]]
    assert (alert.broadcast, alert.state, alert.acknowledged_by) == (True, "accepted", ["coder"])
    (pending,) = by_id[ids["unanswered"]]
    assert (pending.state, pending.accepted, pending.answered_at, pending.to_agent_id) == (
        "pending", False, None, "coder"
    )  # fmt: skip
    refused = sorted((m.kind, m.reason) for m in messages if m.state == "rejected")
    assert refused == [
        ("DECISION", "ALREADY_ANSWERED"),
        ("DECISION", "EXPIRED"),
        ("DECISION", "NOT_ALLOWED"),
        ("REQUEST", "TENANT_MISMATCH"),
        ("REQUEST", "UNKNOWN_RECIPIENT"),
    ]
    (forged,) = [m for m in messages if m.reason == "TENANT_MISMATCH"]
    assert (forged.tenant_id, forged.summary) == ("acme", "")  # the forger's text stays in the forger's scope
    assert {m.kind for m in messages if m.state == "accepted" and not m.broadcast} >= {"HANDOFF", "REPLY"}
    assert all(m.tenant_id == "acme" for m in messages)


def test_messages_by_agent_and_priority(db: psycopg.Connection[Any], story: Story) -> None:
    bus = Bus(db)
    tester = {m.summary for m in bus.messages(ROOT, agent="tester")}
    assert {"Which database should the service use?", "Ship on Friday?", "no"} <= tester  # its refused decision
    assert "Disk almost full on the build host" in tester  # a broadcast reaches everyone
    assert "Summarise the failing tests" not in tester
    root = {m.summary for m in bus.messages(ROOT, agent=ROOT)}
    assert "Which database should the service use?" in root  # escalated to it
    assert [m.summary for m in bus.messages(ROOT, priority="critical")] == ["Disk almost full on the build host"]
    with pytest.raises(UnknownTreeError) as caught:
        bus.messages("acme/no-such-tree")
    assert "unknown tree 'acme/no-such-tree'" in str(caught.value)


def test_questions_with_their_age_and_escalation(db: psycopg.Connection[Any], story: Story) -> None:
    bus, ids = Bus(db), story.ids
    now = story.at["end"] + timedelta(minutes=10)
    questions = {q.question_id: q for q in bus.questions(ROOT, now=now)}
    assert {q: (x.status, x.escalation_level) for q, x in questions.items()} == {
        ids["database"]: ("decided", 1),
        ids["friday"]: ("expired", 1),
        ids["cache"]: ("decided", 0),
        ids["budget"]: ("open", 0),
        ids["retry"]: ("open", 0),
    }
    database = questions[ids["database"]]
    assert (database.asker, database.first_recipient, database.recipient) == ("tester", "planner", ROOT)
    assert database.options == ["PostgreSQL", "SQLite"]
    assert database.decide_by == database.first_decide_by + (database.first_decide_by - database.asked_at)
    assert database.time_to_decide == database.age == story.at["database decided"] - database.asked_at
    open_ = bus.questions(ROOT, open_only=True, now=now)
    assert [q.question_id for q in open_] == [ids["budget"], ids["retry"]]
    assert open_[1].age == now - open_[1].asked_at
    assert [q.question_id for q in bus.questions(ROOT, overdue_only=True, now=now)] == [ids["retry"]]


def test_the_decision_log_holds_accepted_decisions_only(db: psycopg.Connection[Any], story: Story) -> None:
    log = Bus(db).decision_log(ROOT)
    assert [(d.question, d.choice, d.decided_by) for d in log.decisions] == [
        ("Which database should the service use?", "PostgreSQL", ROOT),
        ("Use the shared cache?", "yes", "planner"),
    ]
    database = log.decisions[0]
    assert (database.asker, database.options, database.escalation_level) == ("tester", ["PostgreSQL", "SQLite"], 1)
    assert database.rationale == "We need concurrent writers | and <backups>"
    assert (database.impact, database.impact_details) == ("one more service to run", {"cost": "+1 VM", "risk": "low"})
    assert database.time_to_decide == story.at["database decided"] - database.asked_at
    assert sorted(r.reason or "" for r in log.refused) == ["ALREADY_ANSWERED", "EXPIRED", "NOT_ALLOWED"]
    assert [q.question for q in log.expired] == ["Ship on Friday?"]
    assert log.tenant_id == "acme"
    times = sorted(d.time_to_decide for d in log.decisions if d.time_to_decide is not None)
    assert log.median_time_to_decide == (times[0] + times[1]) / 2


def test_stats(db: psycopg.Connection[Any], story: Story) -> None:
    stats = Bus(db).stats(ROOT, now=story.at["end"] + timedelta(minutes=10))
    assert stats.messages == 18
    assert stats.by_kind["QUESTION"] == {"decided": 2, "expired": 1, "accepted": 2}
    assert stats.by_kind["REQUEST"] == {"replied": 1, "expired": 1, "rejected": 2, "pending": 1}
    assert stats.by_kind["DECISION"] == {"accepted": 2, "rejected": 3}
    assert stats.rejected_by_reason == {
        "ALREADY_ANSWERED": 1, "EXPIRED": 1, "NOT_ALLOWED": 1, "TENANT_MISMATCH": 1, "UNKNOWN_RECIPIENT": 1
    }  # fmt: skip
    assert (stats.open_questions, stats.overdue_questions) == (2, 1)
    assert (stats.decisions_recorded, stats.decisions_refused) == (2, 3)
    # addressed and not acknowledged: planner's four questions (not the request it acknowledged); coder's reply,
    # review (acknowledged under another tenant only), decision and handoff (not the alert); the root's escalations
    assert stats.pending_per_agent == {"coder": 4, "planner": 4, ROOT: 3, "tester": 1}
    assert stats.median_time_to_decide is not None


def test_the_markdown_report_escapes_what_agents_wrote(db: psycopg.Connection[Any], story: Story) -> None:
    report = decision_log_markdown(Bus(db).decision_log(ROOT))
    assert report.startswith("# Decision log of tree acme/release-7\n")
    assert "| Decisions recorded | 2 |" in report and "| Decisions refused | 3 |" in report
    assert "## 1. Which database should the service use?" in report
    assert "- **Rationale:** We need concurrent writers \\| and &lt;backups&gt;" in report
    assert "| cost | +1 VM |" in report and "| risk | low |" in report
    assert "## Refused decisions" in report and "NOT\\_ALLOWED" in report
    assert "## Questions that expired undecided" in report and "Ship on Friday?" in report
    assert "<" not in report.replace("<br>", "")
    assert md("a\n*b*|`c`") == "a<br>\\*b\\*\\|\\`c\\`"


def _reader_url(settings: Settings, role: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(settings.database_url.get_secret_value())
    return psycopg.conninfo.make_conninfo(**{**info, "user": role, "password": PASSWORD})


@pytest.fixture
def globex_reader(settings: Settings, schema: str, unique_name: str) -> Iterator[str]:
    """A tenant login of globex on the test's schema (dropped afterwards: roles are cluster-wide)."""
    name = f"r_{unique_name}_globex"
    create_role(settings, name, RoleKind.tenant, PASSWORD, "globex", schema)
    yield name
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        drop_schema(conn, schema)
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_a_tenant_sees_its_own_rows_only(settings: Settings, schema: str, story: Story, globex_reader: str) -> None:
    with psycopg.connect(_reader_url(settings, globex_reader), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        use_login_scope(conn, schema)
        bus = Bus(conn)
        assert bus.messages(ROOT) == []  # only globex's own forged post names acme's tree, and it was answered
        with pytest.raises(UnknownTreeError):
            bus.decision_log("acme/never")
        for table in _BUS_TABLES + _VIEWS:
            rows = conn.execute(sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(table))).fetchall()
            assert rows == [("globex",)], table  # its forged post and acknowledgement, and its own tree
        (decision,) = bus.decision_log(OTHER).decisions
        assert decision.choice == "globex's secret choice"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SELECT * FROM {}.message_states").format(sql.Identifier(schema)))


def _bus_checksums(db: psycopg.Connection[Any], target: str) -> dict[str, tuple[int, str]]:
    db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target)))
    return {t: c for t, c in table_checksums(db).items() if t in _BUS_TABLES}


def test_reprojection_changes_nothing(
    settings: Settings,
    schema: str,
    db: psycopg.Connection[Any],
    story: Story,
    project: Callable[..., ProjectorStats],
) -> None:
    """A second projector (positions from PostgreSQL) and a batch written again leave the tables as they were."""
    before = _bus_checksums(db, schema)
    assert before["message_states"][0] == 19 and before["message_posts"][0] == 20
    again = project(group_id=f"again-{uuid.uuid4()}")
    assert again.records == 0
    assert _bus_checksums(db, schema) == before
    serde = Serde()
    records = list(read_topic(settings, settings.topic_prefix + MESSAGE_EVENTS.name))
    genesis = {(r.topic, r.partition): PartitionState(0, audit_chain.GENESIS) for r in records}
    writer = BatchWriter(settings, schema, role=None)
    try:
        with pytest.raises(StalePositionsError):
            writer.write(build_batch(records, genesis, serde, settings.topic_prefix))
    finally:
        writer.close()
    assert _bus_checksums(db, schema) == before


def test_bus_tables_do_not_depend_on_batching_or_interleaving(
    settings: Settings, schema: str, db: psycopg.Connection[Any]
) -> None:
    """Messages and facts on their two topics, read in any interleaving and any batch sizes: identical tables."""
    events = _release().events + _other_tenant().events
    serde = Serde()
    streams: dict[tuple[str, int], list[Record]] = {}
    for event in events:
        topic = topic_of(type(event)).name
        where = (topic, 0 if event.meta.root_id == ROOT else 1)
        offset = len(streams.setdefault(where, []))
        streams[where].append(Record(topic, where[1], offset, 1_000 + offset, key_of(event).encode(),
                                     serde.encode(event, topic)))  # fmt: skip
    checksums = []
    for seed in range(4):
        target = f"{schema}_b{seed}"
        migrate(settings, target)
        try:
            rng = random.Random(seed)
            queues = {where: list(records) for where, records in streams.items()}
            states = {where: PartitionState(0, audit_chain.GENESIS) for where in queues}
            writer = BatchWriter(settings, target, role=None)
            try:
                while any(queues.values()):
                    chunk = [queues[rng.choice([w for w, q in queues.items() if q])].pop(0)]
                    while rng.random() < 0.8 and any(queues.values()):
                        chunk.append(queues[rng.choice([w for w, q in queues.items() if q])].pop(0))
                    batch = build_batch(chunk, states, serde, "")
                    writer.write(batch)
                    states.update(batch.end)
            finally:
                writer.close()
            checksums.append(_bus_checksums(db, target))
        finally:
            drop_schema(db, target)
    assert checksums[0]["message_states"][0] == 19
    assert checksums[0] == checksums[1] == checksums[2] == checksums[3]


@pytest.fixture
def cli(settings: Settings, schema: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run ``agentlog bus …`` in this process (typer's runner) against the test's stack and schema."""
    from tests.support import agentlog_env

    for name, value in agentlog_env(settings).items():
        if name.startswith("AGENTLOG_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AGENTLOG_DB_SCHEMA", schema)
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps tables to the terminal's width
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, ["bus", *args])
    get_settings.cache_clear()


def test_the_cli(cli: Callable[..., Any], story: Story) -> None:
    listed = cli("messages", ROOT)
    assert listed.exit_code == 0, listed.output
    assert "Summarise the failing tests" in listed.output and "UNKNOWN_RECIPIENT" in listed.output
    assert "pending" in listed.output and "(everyone)" in listed.output
    critical = json.loads(cli("messages", ROOT, "--priority", "CRITICAL", "-o", "json").output)
    assert [m["summary"] for m in critical] == ["Disk almost full on the build host"]
    assert critical[0]["deliveries"][0]["agent_id"] == "coder"
    mine = json.loads(cli("messages", ROOT, "--agent", "tester", "-o", "json").output)
    assert "Summarise the failing tests" not in [m["summary"] for m in mine]
    questions = cli("questions", ROOT)
    assert questions.exit_code == 0 and "Which database" in questions.stdout and "decided" in questions.stdout
    overdue = json.loads(cli("questions", ROOT, "--overdue", "-o", "json").output)
    assert [q["question"] for q in overdue] == ["Retry the flaky suite?"]
    assert overdue[0]["age_s"] > 0 and overdue[0]["overdue"] is True
    opened = json.loads(cli("questions", ROOT, "--open", "-o", "json").output)
    assert [q["question"] for q in opened] == ["Raise the token budget?", "Retry the flaky suite?"]
    log = json.loads(cli("decision-log", ROOT, "-o", "json").output)
    assert [d["choice"] for d in log["decisions"]] == ["PostgreSQL", "yes"]
    assert log["decisions"][0]["impact_details"] == {"cost": "+1 VM", "risk": "low"}
    assert log["decisions"][0]["time_to_decide_s"] > 60
    pretty = cli("decision-log", ROOT)
    assert pretty.exit_code == 0 and "PostgreSQL" in pretty.output and "refused decisions" in pretty.output
    report = cli("decision-log", ROOT, "-o", "markdown")
    assert report.exit_code == 0 and report.output.startswith("# Decision log of tree")
    stats = json.loads(cli("stats", ROOT, "-o", "json").output)
    assert (stats["messages"], stats["decisions_recorded"], stats["decisions_refused"]) == (18, 2, 3)
    assert stats["median_time_to_decide_s"] > 0
    assert "median time to decide" in cli("stats", ROOT).output
    unknown = cli("messages", "acme/nope")
    assert unknown.exit_code == 2 and "unknown tree 'acme/nope'" in unknown.output
    bad = cli("messages", ROOT, "--priority", "URGENT")
    assert bad.exit_code == 2 and "--priority URGENT: expected one of CRITICAL, HIGH, NORMAL, LOW" in bad.output


@pytest.fixture
def bus_worker(settings: Settings) -> Iterator[Any]:
    from tests.processors.gate_harness import Worker

    worker = Worker(settings, "bus-1", args=("--processor", "bus"))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.mark.timeout(300)
def test_the_real_bus_workers_facts(
    settings: Settings,
    bus_worker: Any,
    publish: Callable[[list[Event]], None],
    project: Callable[..., ProjectorStats],
    db: psycopg.Connection[Any],
) -> None:
    """Messages decided by the bus worker, projected: the answers find their posts, the decision its question."""
    root = "acme/live-1"

    def meta() -> ev.Meta:
        return ev.Meta(tenant_id="acme", root_id=root, producer="test")

    question = ev.AgentQuestion(meta=meta(), message_id=uuid.uuid4(), from_agent_id="w1", question="go?",
                                options=["go", "wait"])  # fmt: skip
    decision = ev.DecisionRecorded(
        meta=meta(),
        message_id=uuid.uuid4(),
        question_id=question.message_id,
        decided_by=root,
        choice="go",
        rationale="ready",
        impact_details={"eta": "1d"},
    )
    stranger = ev.AgentAlert(meta=meta(), message_id=uuid.uuid4(), from_agent_id="stranger", text="hi")
    publish(admitted_tree(root, ["w1", "w2"]))
    publish([question, stranger])
    _wait_for_answers(settings, 2)
    publish([decision, ev.MessageAcknowledged(meta=meta(), message_id=question.message_id, agent_id=root)])
    _wait_for_answers(settings, 3)
    project()
    bus = Bus(db)
    (entry,) = bus.decision_log(root).decisions
    assert (entry.question, entry.asker, entry.options, entry.choice, entry.rationale, entry.impact_details) == (
        "go?", "w1", ["go", "wait"], "go", "ready", {"eta": "1d"}
    )  # fmt: skip
    assert entry.time_to_decide is not None and entry.time_to_decide > timedelta(0)
    states = {m.summary: (m.state, m.reason) for m in bus.messages(root)}
    assert states == {"go?": ("decided", None), "go": ("accepted", None), "hi": ("rejected", "NOT_AN_ACTIVE_AGENT")}
    (asked,) = bus.questions(root)
    assert asked.recipient == root and asked.decided_by == root


def _wait_for_answers(settings: Settings, count: int, timeout_s: float = 120) -> None:
    serde, deadline = Serde(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = read_topic(settings, settings.topic_prefix + MESSAGE_EVENTS.name)
        if sum(serde.decode(r.value or b"").meta.causation_id is not None for r in records) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"the bus did not answer {count} messages within {timeout_s} s")


def test_durations_in_json_are_seconds() -> None:
    from agentlog.projections.bus_render import bus_json, duration

    assert json.loads(bus_json({"took": timedelta(seconds=90), "at": datetime(2026, 1, 1, tzinfo=UTC)})) == {
        "took_s": 90.0, "at": "2026-01-01T00:00:00+00:00"
    }  # fmt: skip
    spans = [timedelta(milliseconds=850), timedelta(seconds=42), timedelta(seconds=185), timedelta(hours=2, minutes=4)]
    assert [duration(s) for s in spans] + [duration(None)] == ["850 ms", "42s", "3m 05s", "2h 04m", "-"]
