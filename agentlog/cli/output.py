"""How the CLI reports: results on stdout, errors on stderr with a stable exit code."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from agentlog.errors import AgentlogError, PayloadError, TelemetryConfigError, UnknownRecordError

if TYPE_CHECKING:
    from agentlog.settings import Settings

EXIT_FAILURE = 1
"""The operation failed (broker or database trouble, a check that found problems)."""
EXIT_BAD_INPUT = 2
"""The input was wrong: a payload, an argument, a file. Nothing was written."""


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def fail_for(error: AgentlogError) -> NoReturn:
    """Report an agentlog error with the exit code its kind calls for."""
    if isinstance(error, PayloadError):
        where = f" on input line {error.line}" if error.line is not None else ""
        lines = [f"invalid {error.record} payload{where}; nothing was published"]
        lines += [f"  {path}: {reason}" for path, reason in error.problems]
        fail("\n".join(lines), EXIT_BAD_INPUT)
    if isinstance(error, UnknownRecordError | TelemetryConfigError):
        fail(str(error), EXIT_BAD_INPUT)
    fail(str(error))


def kafka_settings() -> Settings:
    """The settings, once a broker has answered; otherwise ``error: cannot reach Kafka at …`` and exit 1.

    Commands that need Kafka start with it, so that an absent broker is reported within
    ``AGENTLOG_CONNECT_TIMEOUT_S``, in one line, instead of by whichever call fails first.
    """
    from agentlog.kafka_check import ensure_reachable
    from agentlog.settings import get_settings

    settings = get_settings()
    try:
        ensure_reachable(settings)
    except AgentlogError as e:
        fail(str(e))
    return settings


MetricsPort = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=65535,
        help="Serve metrics for Prometheus on this port (/metrics) [default: $AGENTLOG_METRICS_PORT, else none].",
    ),
]


def start_telemetry(service_name: str, metrics_port: int | None = None) -> None:
    """Traces and metrics as the ``OTEL_*`` variables ask (:mod:`agentlog.telemetry`); exit 2 on a bad setting."""
    from agentlog import telemetry

    try:
        telemetry.configure(service_name, metrics_port=metrics_port)
    except TelemetryConfigError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except OSError as e:
        fail(f"cannot serve metrics on port {metrics_port}: {e.strerror}", EXIT_BAD_INPUT)
