"""A side input of a processor: a small topic read from its beginning, to its end before deciding, then followed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from agentlog.partition_reader import BEGINNING, PartitionReader, PartitionReadError
from agentlog.processors.errors import GateError
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import TopicSpec


class SideInput(ABC):
    """Reads every partition of ``spec`` from offset 0 and hands each record, in offset order, to :meth:`apply`."""

    what = "side input"
    """What the topic holds, for error messages (``the policy topic``)."""

    def __init__(self, settings: Settings, spec: TopicSpec) -> None:
        self._serde = Serde.from_settings(settings)
        self._reader = PartitionReader(settings)
        topic = settings.topic_prefix + spec.name
        self._reader.assign((topic, p, BEGINNING) for p in range(spec.partitions))

    @abstractmethod
    def apply(self, record: Record) -> None:
        """Take one record into the state (it must never raise for bad content: log and ignore it)."""

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read to the end of the topic, waiting up to ``timeout_s`` for the broker."""
        self._reader.patience_s = timeout_s
        self.read_to_end()

    def read_to_end(self) -> None:
        """Apply every record up to the topic's current end."""
        try:
            self._apply(self._reader.read_to_end())
        except PartitionReadError as e:
            raise GateError(f"could not read {self.what}: {e}") from e

    def poll(self) -> None:
        """Apply records published since the last call (non-blocking)."""
        try:
            self._apply(self._reader.follow(100))
        except PartitionReadError as e:
            raise GateError(f"reading {self.what}: {e}") from e

    def close(self) -> None:
        """Close the consumer (a reader used once)."""
        self._reader.close()

    def _apply(self, records: Iterable[Record]) -> None:
        for record in records:
            self.apply(record)
