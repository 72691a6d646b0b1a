"""Audit replay: export a log, verify the audit table against Kafka, rebuild the projections, re-run the decisions.

``__all__`` is the face other packages use (the CLI, the benchmarks, the tests); the
modules behind it are internals of this package. Replay itself reaches the processors and
the projections only through their faces.
"""

from agentlog.records import Record
from agentlog.replay.check_export import check_export, load_manifest
from agentlog.replay.errors import ExportFormatError, PolicyNameError, ReplayError, SelectionError
from agentlog.replay.export import ExportFormat, export, manifest_path
from agentlog.replay.progress import Progress
from agentlog.replay.rebuild import rebuild
from agentlog.replay.render import decision_report_text
from agentlog.replay.runs import decisions_report
from agentlog.replay.selection import Selection
from agentlog.replay.topic_reader import partitions_of, read_partition, read_topic, record_ends
from agentlog.replay.verify import verify

__all__ = [
    "ExportFormat",
    "ExportFormatError",
    "PolicyNameError",
    "Progress",
    "Record",
    "ReplayError",
    "Selection",
    "SelectionError",
    "check_export",
    "decision_report_text",
    "decisions_report",
    "export",
    "load_manifest",
    "manifest_path",
    "partitions_of",
    "read_partition",
    "read_topic",
    "rebuild",
    "record_ends",
    "verify",
]
