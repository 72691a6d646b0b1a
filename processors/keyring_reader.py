"""Follows the keyring topic for a processor: the keys in force, and their position for the outputs' headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from agentlog import events as ev
from agentlog.keyring import KEYRING_HEADER, Attribution, Keyring
from agentlog.partition_reader import BEGINNING, PartitionReader, PartitionReadError
from agentlog.processors.errors import GateError
from agentlog.records import Headers, Record
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import KEYRING

log = logging.getLogger("agentlog.keyring")

REFRESH_INTERVAL_S = 0.1
"""How often at most a record signed by a key not yet read makes the reader read the keyring to its end."""


class KeyringReader:
    """Reads ``agentlog.keyring`` from the beginning and attributes input records with what it read."""

    def __init__(self, settings: Settings) -> None:
        self.keyring = Keyring()
        self._serde = Serde.from_settings(settings)
        self._reader = PartitionReader(settings)
        self._topic = settings.topic_prefix + KEYRING.name
        self._reader.assign((self._topic, p, BEGINNING) for p in range(KEYRING.partitions))
        self._last_refresh = 0.0

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read the keyring to its end (its last stable offset) before anything is decided."""
        self._reader.patience_s = timeout_s
        self._read_to_end()
        log.info("keyring read: %d keys, position %d", len(self.keyring.keys), self.keyring.position)

    def poll(self) -> None:
        """Apply keyring records published since the last call (non-blocking)."""
        try:
            self._apply(self._reader.follow(100))
        except PartitionReadError as e:
            raise GateError(f"reading the keyring topic: {e}") from e

    def attribute(self, record: Record) -> Attribution:
        """Who signed ``record``; a key not read yet makes the reader read to the keyring's end first (so
        that a key published before the record was produced is found), at most every
        :data:`REFRESH_INTERVAL_S`."""
        attribution = self.keyring.attribute(record)
        if attribution.reason is ev.DenialReason.UNKNOWN_KEY:
            now = time.monotonic()
            if now - self._last_refresh >= REFRESH_INTERVAL_S:
                self._last_refresh = now
                self._read_to_end()
                attribution = self.keyring.attribute(record)
        return attribution

    def headers(self) -> Headers:
        """The header naming the keyring position decisions are now made at."""
        return [(KEYRING_HEADER, str(self.keyring.position).encode())]

    def close(self) -> None:
        """Close the consumer."""
        self._reader.close()

    def _read_to_end(self) -> None:
        try:
            self._apply(self._reader.read_to_end())
        except PartitionReadError as e:
            raise GateError(f"could not read the keyring topic: {e}") from e

    def _apply(self, records: Iterable[Record]) -> None:
        for record in records:
            self.keyring.apply(record, self._serde)
