"""Follows the keyring topic for a processor: the keys in force, and their position for the outputs' headers."""

from __future__ import annotations

import logging
import time

from agentlog import events as ev
from agentlog.keyring import KEYRING_HEADER, Attribution, Keyring
from agentlog.processors.side_input import SideInput
from agentlog.records import Headers, Record
from agentlog.settings import Settings
from agentlog.topics import KEYRING

log = logging.getLogger("agentlog.keyring")

REFRESH_INTERVAL_S = 0.1
"""How often at most a record signed by a key not yet read makes the reader read the keyring to its end."""


class KeyringReader(SideInput):
    """Reads ``agentlog.keyring`` from the beginning and attributes input records with what it read."""

    what = "the keyring topic"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, KEYRING)
        self.keyring = Keyring()
        self._last_refresh = 0.0
        self._header: tuple[int, Headers] = (-1, [])

    @classmethod
    def read(cls, settings: Settings) -> Keyring:
        """The keyring as it stands now (read to its end, once)."""
        reader = cls(settings)
        try:
            reader.catch_up()
        finally:
            reader.close()
        return reader.keyring

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read the keyring to its end before anything is decided."""
        super().catch_up(timeout_s)
        log.info("keyring read: %d keys, position %d", len(self.keyring.keys), self.keyring.position)

    def apply(self, record: Record) -> None:
        self.keyring.apply(record, self._serde)

    def attribute(self, record: Record) -> Attribution:
        """Who signed ``record``; a key not read yet makes the reader read to the keyring's end first (so
        that a key published before the record was produced is found), at most every
        :data:`REFRESH_INTERVAL_S`."""
        attribution = self.keyring.attribute(record)
        if attribution.reason is ev.DenialReason.UNKNOWN_KEY:
            now = time.monotonic()
            if now - self._last_refresh >= REFRESH_INTERVAL_S:
                self._last_refresh = now
                self.read_to_end()
                attribution = self.keyring.attribute(record)
        return attribution

    def headers(self) -> Headers:
        """The header naming the keyring position decisions are now made at (built once per position)."""
        position = self.keyring.position
        if self._header[0] != position:
            headers: Headers = [(KEYRING_HEADER, str(position).encode())]
            self._header = (position, headers)
        return self._header[1]
