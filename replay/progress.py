"""Progress of long replay runs, on stderr, at most every few seconds."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts records and reports the count and rate every ``interval_s`` (never on stdout)."""

    def __init__(
        self, what: str, *, enabled: bool = True, interval_s: float = 2.0, stream: TextIO | None = None
    ) -> None:
        self.what = what
        self.enabled = enabled
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.count = 0
        self.started = time.monotonic()
        self._next = self.started + interval_s

    def advance(self, n: int = 1, detail: str = "") -> None:
        """Count ``n`` more records; print a line if the interval has passed."""
        self.count += n
        if self.enabled and n and time.monotonic() >= self._next:
            self._report(detail)

    def _report(self, detail: str) -> None:
        now = time.monotonic()
        self._next = now + self.interval_s
        rate = self.count / max(now - self.started, 1e-9)
        extra = f" {detail}" if detail else ""
        print(f"{self.what}: {self.count:,} records ({rate:,.0f}/s){extra}", file=self.stream, flush=True)

    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started
