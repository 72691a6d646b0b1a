"""Fixtures of the observability tests: a real Jaeger (built once, cached outside the clone)."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support import REPO

from .support import JAEGER_QUERY


def _answers() -> bool:
    try:
        with urllib.request.urlopen(f"{JAEGER_QUERY}/api/services", timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def jaeger() -> Iterator[str]:
    """Jaeger's query API (OTLP on 4317/4318), started unless it runs; built first if the binary is missing."""
    started = not _answers()
    if started:
        subprocess.run(["bash", str(REPO / "deploy/observability/jaeger.sh"), "up"], check=True)
    yield JAEGER_QUERY
    if started:
        subprocess.run(["bash", str(REPO / "deploy/observability/jaeger.sh"), "down"], check=False)
