"""Running spawn-gate workers as real processes, feeding them and reading what they committed."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agentlog import events as ev
from agentlog.processors.ids import child_agent_id
from agentlog.processors.policy import Policy, load_default_policy, to_event
from agentlog.producer import Producer
from agentlog.replay import read_topic
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topics import POLICY_DECISIONS
from tests.support import agentlog_env


@dataclass
class Worker:
    """One `agentlog processors run` process, restartable under the same worker id."""

    settings: Settings
    worker_id: str
    args: tuple[str, ...] = ()
    """More options of `agentlog processors run`."""
    log: Path | None = None
    """Where the worker's log goes (appended); None: this process's stderr."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "agentlog.cli.main", "processors", "run", "--worker-id", self.worker_id]
        stderr = self.log.open("ab") if self.log is not None else None
        try:
            self.process = subprocess.Popen(
                [*command, "--log-level", "WARNING", *self.args], env=agentlog_env(self.settings), stderr=stderr
            )
        finally:
            if stderr is not None:
                stderr.close()
        self.starts += 1

    def pause(self, seconds: float) -> None:
        """SIGSTOP for ``seconds``, then SIGCONT: a stalled process, its open transaction left as it was."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no chance to commit, flush or leave the group."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def publish_policy(settings: Settings, policy: Policy | None = None) -> None:
    """Publish ``policy`` (the default one if None)."""
    with Producer(settings) as producer:
        producer.publish(to_event(policy or load_default_policy(), published_by="tests"))


@contextmanager
def running_gate(settings: Settings, worker_id: str, policy: Policy | None = None) -> Iterator[Worker]:
    """A spawn-gate worker running under ``policy`` (the default one if None), stopped at the end."""
    publish_policy(settings, policy)
    worker = Worker(settings, worker_id)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@dataclass
class Workload:
    """A deterministic stream of registrations, spawn requests and usage reports over many trees.

    Child ids are derived from request ids exactly as the gate does, so requests can name
    parents that the gate will (or will not) have approved without waiting for decisions.
    Budgets are small enough that trees run out of spawn and token budget, and configs,
    depths and fan-out are mixed so that every common denial happens.
    """

    trees: int
    requests_per_tree: int
    seed: int = 7
    requests: int = 0
    batches: list[list[ev.Event]] = field(default_factory=list)

    def build(self, batch_size: int = 250) -> None:
        rng = random.Random(self.seed)
        meta_rng = random.Random(self.seed + 1)
        events: list[ev.Event] = []
        configs = ["researcher", "coder", "reviewer", "summarizer", "hacker"]
        for t in range(self.trees):
            root = f"tree-{self.seed}-{t}"

            def meta(root: str = root) -> ev.Meta:
                return ev.Meta(
                    event_id=uuid.UUID(int=meta_rng.getrandbits(128)), tenant_id="acme", root_id=root, producer="test"
                )

            events.append(
                ev.RootAgentRegistered(
                    meta=meta(),
                    agent_id=root,
                    config="orchestrator",
                    token_budget=rng.choice([50_000, 200_000]),
                    spawn_budget=rng.choice([4, 12]),
                )
            )
            agents = [root]
            for _ in range(self.requests_per_tree):
                request_id = uuid.UUID(int=rng.getrandbits(128))
                parent = rng.choice(agents)
                events.append(
                    ev.SpawnRequested(
                        meta=meta(),
                        request_id=request_id,
                        parent_agent_id=parent,
                        child_config=rng.choice(configs),
                        task=ev.TaskSpec(title="t"),
                        requested_token_budget=rng.choice([1_000, 10_000, 60_000]),
                        requested_spawn_budget=rng.choice([0, 0, 1, 2]),
                    )
                )
                agents.append(child_agent_id(request_id))
                self.requests += 1
                if rng.random() < 0.2:
                    events.append(
                        ev.TokensConsumed(
                            meta=meta(), agent_id=rng.choice(agents), tokens=rng.choice([100, 5_000, 70_000])
                        )
                    )
        # Interleave trees, keeping each tree's own order (it is one partition's order).
        per_tree: dict[str, list[ev.Event]] = {}
        for event in events:
            per_tree.setdefault(event.meta.root_id, []).append(event)
        queues = list(per_tree.values())
        ordered: list[ev.Event] = []
        while queues:
            queue = queues.pop(rng.randrange(len(queues)))
            ordered.append(queue.pop(0))
            if queue:
                queues.append(queue)
        self.batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def committed_decisions(settings: Settings) -> dict[int, list[ev.Event]]:
    """Every decision a read_committed consumer sees, per partition, in offset order."""
    serde = Serde()
    out: dict[int, list[ev.Event]] = {}
    for record in read_topic(settings, settings.topic_prefix + POLICY_DECISIONS.name):
        partition, value = record.partition, record.value
        out.setdefault(partition, []).append(serde.decode(value or b""))
    return out


def answered_requests(decisions: dict[int, list[ev.Event]]) -> Counter[str]:
    """How many decisions answer each request (by the request's event id)."""
    answers = (ev.SpawnApproved, ev.SpawnDenied, ev.RootAdmitted, ev.RootRejected)
    return Counter(str(d.meta.causation_id) for ds in decisions.values() for d in ds if isinstance(d, answers))


def wait_for_answers(settings: Settings, expected: int, timeout_s: float) -> dict[int, list[ev.Event]]:
    """Read committed decisions until ``expected`` requests are answered (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        decisions = committed_decisions(settings)
        if len(answered_requests(decisions)) >= expected or time.monotonic() > deadline:
            return decisions
        time.sleep(1)
