"""Wiring of the decision replay: which log, which policies, which topic names."""

from __future__ import annotations

from pathlib import Path

from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS
from processors.policy import Policy
from replay.decisions import DecisionReplay, DecisionReport
from replay.log_source import ExportLog, KafkaLog, LogSource
from replay.policies import PolicyHistory, add_from_audit
from replay.progress import Progress


def decisions_report(
    settings: Settings,
    *,
    log: Path | None = None,
    what_if: Policy | None = None,
    root_id: str | None = None,
    policy_name: str = "default",
    schema: str | None = None,
    progress: bool = False,
) -> DecisionReport:
    """Replay the gate over Kafka (or the export file ``log``) and compare with its recorded decisions.

    Policy versions come from the log; versions a decision names that the log lacks are
    looked up in the audit table of ``schema`` (when given and reachable).
    """
    serde = Serde.from_settings(settings) if log is None else Serde()
    source: LogSource
    if log is None:
        source = KafkaLog(settings)
        decisions_topic = settings.topic_prefix + POLICY_DECISIONS.name
    else:
        exported = ExportLog(log)
        source, decisions_topic = exported, exported.decisions_topic
    history = PolicyHistory(policy_name)
    history.add_records(source.policy_records(), serde)
    if log is None and schema is not None:
        add_from_audit(history, settings, schema)
    replay = DecisionReplay(
        source,
        history,
        what_if=what_if,
        root_id=root_id,
        serde=serde,
        decisions_topic=decisions_topic,
        progress=Progress("decisions", enabled=progress),
    )
    return replay.run()
