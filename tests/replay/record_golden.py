"""Record the golden logs: run the real spawn gate (and the other processors a scenario names) over each
scenario and export what they decided.

    python -m tests.replay.record_golden [denials lifecycle]

needs the local stack (``make up``). Each scenario runs under a fresh topic prefix with one
``agentlog processors run`` worker; once every request is answered (and deadlines have
passed), the whole log is exported with ``replay export`` to
``tests/fixtures/golden/<scenario>.jsonl`` (+ manifest), and replayed once to make sure
the recording reproduces. The files are checked in; ``test_golden_logs`` replays them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agentlog.keyring import KeyringHistory
from agentlog.replay.bus_decisions import BusReplay
from agentlog.replay.decisions import DecisionReplay
from agentlog.replay.export import export
from agentlog.replay.log_source import ExportLog
from agentlog.replay.mission_decisions import MissionReplay
from agentlog.replay.policies import PolicyHistory
from agentlog.replay.selection import Selection
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import ensure_topics

from .gate_run import run_scenario
from .scenarios import PROCESSORS, SCENARIOS, Script

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"


def record(name: str, script: Script, base: Settings) -> Path:
    settings = base.model_copy(update={"topic_prefix": f"golden-{name}-{int(time.time())}."})
    ensure_topics(settings)
    run_scenario(settings, script, processors=PROCESSORS.get(name, ()))
    path = GOLDEN / f"{name}.jsonl"
    manifest = export(settings, Selection(), path)
    history = PolicyHistory("default")
    log = ExportLog(path)
    history.add_records(log.policy_records(), Serde())
    report = DecisionReplay(log, history, keyring=KeyringHistory(log.keyring_records(), Serde())).run()
    for replay in (MissionReplay, BusReplay):
        if report.clean:
            report = replay(log, history).run()
    kinds = {
        n.rsplit(".", 1)[-1]: c
        for n, c in manifest.counts.items()
        if ".decision." in n or ".mission." in n or n.startswith("agentlog.message.Message")
    }
    print(f"{name}: {manifest.records} records, decisions {dict(kinds)}; replay clean: {report.clean}")
    if not report.clean:
        raise SystemExit(f"{name}: the recording does not replay: {report.outcomes[:3]}")
    return path


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in names:
        record(name, SCENARIOS[name](), Settings())


if __name__ == "__main__":
    main()
