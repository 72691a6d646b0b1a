"""CLI of the processors: ``agentlog processors run`` and ``agentlog policy publish|show``."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from agentlog.cli.output import EXIT_BAD_INPUT, MetricsPort, fail, fail_for, kafka_settings, start_telemetry
from agentlog.errors import AgentlogError
from agentlog.processors.bus_worker import BusConfig, bus_worker
from agentlog.processors.errors import PolicyError
from agentlog.processors.gate_worker import GateConfig, spawn_gate_worker
from agentlog.processors.mission_worker import MissionConfig, mission_worker
from agentlog.processors.policy import DEFAULT_POLICY_PATH, load_policy
from agentlog.processors.policy_publisher import PolicyVersionError, publish_policy
from agentlog.processors.policy_reader import PolicyReader

processors_app = typer.Typer(help="Stream processors.", no_args_is_help=True)
policy_app = typer.Typer(help="Spawn policies.", no_args_is_help=True)


@processors_app.command("run")
def run(
    worker_id: Annotated[
        str | None, typer.Option(help="Stable id of this worker slot (default: host name); keep it across restarts.")
    ] = None,
    policy: Annotated[str, typer.Option(help="Name of the policy to enforce.")] = "default",
    batch_size: Annotated[int, typer.Option(min=1, help="Most records decided per transaction.")] = 2000,
    batch_wait_ms: Annotated[int, typer.Option(min=1, help="Longest wait for records before deciding.")] = 5,
    clock_margin_ms: Annotated[
        int, typer.Option(min=0, help="Allowed clock difference between this host and the brokers.")
    ] = 5,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    processor: Annotated[
        str, typer.Option(help="gate (the spawn gate), missions (the mission processor) or bus (the consultation bus).")
    ] = "gate",
    metrics_port: MetricsPort = None,
) -> None:
    """Run a processor (the spawn gate by default) until SIGTERM or Ctrl-C. Start several to share the partitions."""
    kinds: dict[str, type[GateConfig | MissionConfig | BusConfig]] = {
        "gate": GateConfig,
        "missions": MissionConfig,
        "bus": BusConfig,
    }
    if processor not in kinds:
        fail(f"--processor {processor!r}: expected gate, missions or bus", EXIT_BAD_INPUT)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start_telemetry(f"agentlog-{processor}", metrics_port)
    settings = kafka_settings()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    config = kinds[processor](
        worker_id=worker_id or socket.gethostname(),
        policy_name=policy,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        clock_margin_ms=clock_margin_ms,
    )
    try:
        if isinstance(config, MissionConfig):
            stats = mission_worker(settings, config).run(stop)
        elif isinstance(config, BusConfig):
            stats = bus_worker(settings, config).run(stop)
        else:
            stats = spawn_gate_worker(settings, config).run(stop)
    except AgentlogError as e:
        fail_for(e)
    outputs = "decisions" if processor == "gate" else "facts"
    print(f"stopped after {stats.inputs} inputs, {stats.outputs} {outputs}, {stats.dead_letters} dead letters")


@policy_app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.")] = DEFAULT_POLICY_PATH,
    published_by: Annotated[str, typer.Option(help="Who publishes (recorded in the event).")] = "agentlog-cli",
) -> None:
    """Validate a policy file and publish it as the next version (idempotent for an unchanged version).

    Publishers of one policy are serialised (see ``processors/policy_publisher.py``): two at
    once cannot both publish, and a version is never published with two contents.
    """
    settings = kafka_settings()
    try:
        policy = load_policy(file)
    except PolicyError as e:
        fail(str(e), EXIT_BAD_INPUT)
    try:
        publication = publish_policy(settings, policy, published_by)
    except PolicyVersionError as e:
        fail(str(e), EXIT_BAD_INPUT)
    except AgentlogError as e:
        fail_for(e)
    if publication.delivery is None:
        print(f"policy {policy.name} version {policy.version} is already published")
        return
    digest = policy.content_hash()[:12]
    offset = publication.delivery.offset
    print(f"published policy {policy.name} version {policy.version} ({digest}) at offset {offset}")


@policy_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Policy name.")] = "default") -> None:
    """Print the version of a policy in force, as YAML-like text."""
    import yaml

    settings = kafka_settings()
    try:
        reader = PolicyReader(settings, name)
        reader.catch_up()
    except AgentlogError as e:
        fail_for(e)
    if reader.current is None:
        fail(f"no version of policy {name!r} has been published")
    print(yaml.safe_dump(reader.current.model_dump(mode="json"), sort_keys=False))
