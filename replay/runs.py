"""Wiring of the decision replay: which log, which policies, which topic names; partitions in parallel."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from agentlog.keyring import KeyringHistory
from agentlog.partitioning import partition_of
from agentlog.processors import CLOCK_MARGIN_MS, Policy
from agentlog.records import Record
from agentlog.replay.bus_decisions import BusReplay
from agentlog.replay.decisions import DecisionReplay, DecisionReport
from agentlog.replay.log_source import ExportLog, KafkaLog, LogSource
from agentlog.replay.mission_decisions import MissionReplay
from agentlog.replay.policies import PolicyHistory, add_from_audit, resolve_policy_name
from agentlog.replay.progress import Progress
from agentlog.serde import Serde
from agentlog.settings import Settings

REPLAYS: dict[str, type[DecisionReplay]] = {"gate": DecisionReplay, "missions": MissionReplay, "bus": BusReplay}
"""The processors whose decisions a replay proves, by name."""


@dataclass(frozen=True)
class _Plan:
    """Everything a worker process needs to replay some partitions (picklable)."""

    source: LogSource
    history: PolicyHistory
    keyring: tuple[Record, ...]
    """The keyring topic's records (replay attributes each input with the keyring its decision names)."""
    what_if: Policy | None
    root_id: str | None
    settings: Settings | None
    """For the wire format of a Kafka log; None for an export file."""
    progress: bool
    clock_margin_ms: int = CLOCK_MARGIN_MS
    processor: str = "gate"

    def run(self, partitions: list[int]) -> DecisionReport:
        serde = Serde.from_settings(self.settings) if self.settings is not None else Serde()
        replay = REPLAYS[self.processor](
            self.source,
            self.history,
            keyring=KeyringHistory(self.keyring, serde),
            what_if=self.what_if,
            root_id=self.root_id,
            serde=serde,
            clock_margin_ms=self.clock_margin_ms,
            progress=Progress(f"{self.processor} decisions {partitions}", enabled=self.progress),
        )
        return replay.run(partitions)


def _run_one(plan: _Plan, partition: int) -> DecisionReport:
    return plan.run([partition])


def decisions_report(
    settings: Settings,
    *,
    log: Path | None = None,
    what_if: Policy | None = None,
    root_id: str | None = None,
    policy_name: str | None = None,
    schema: str | None = None,
    progress: bool = False,
    workers: int = 1,
    clock_margin_ms: int = CLOCK_MARGIN_MS,
    processor: str = "gate",
) -> DecisionReport:
    """Replay ``processor`` (``gate``, ``missions`` or ``bus``: :data:`REPLAYS`) over Kafka (or the export file
    ``log``) and compare with its recorded decisions.

    The policy is the one the decisions name (``policy_name`` overrides; logs written before
    decisions named it fall back to the only policy published). Its versions come from the
    log; versions a decision names that the log lacks are
    looked up in the audit table of ``schema`` (when given and reachable). Partitions are
    independent (each has its own gate state), so ``workers`` processes share them.
    """
    serde = Serde.from_settings(settings) if log is None else Serde()
    source: LogSource = KafkaLog(settings) if log is None else ExportLog(log)
    published = list(source.policy_records())  # read once: for the policy's name and for its versions
    history = PolicyHistory(resolve_policy_name(source, serde, policy_name, published))
    history.add_records(published, serde)
    if log is None and schema is not None:
        add_from_audit(history, settings, schema)
    wire = settings if log is None else None
    keyring = tuple(source.keyring_records())
    plan = _Plan(source, history, keyring, what_if, root_id, wire, progress, clock_margin_ms, processor)
    every = REPLAYS[processor].partitions_in(source)
    partitions = every if root_id is None else [partition_of(root_id, source.partition_count())]
    if workers <= 1 or len(partitions) <= 1:
        return plan.run(partitions)
    report = DecisionReport(
        what_if=f"{what_if.name} v{what_if.version}" if what_if else None,
        policy_versions=sorted(history.versions),
        policy_problems=list(history.problems),
    )
    context = multiprocessing.get_context("spawn")  # no fork of a process holding librdkafka threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for partial in pool.map(_run_one, [plan] * len(partitions), partitions):
            report.merge(partial)
    return report
