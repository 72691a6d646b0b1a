"""How soon the ``agentlog`` command starts and finishes, next to a bare Python in the same run.

Each command runs as its own process, as a user runs it (the ``agentlog`` console script
when it is installed, else ``python -m agentlog.cli.main``), timed from spawn to exit; the
commands alternate round by round so that the machine's state is shared:

- ``python -c pass``: the interpreter alone, the floor every command stands on;
- ``agentlog --help``: the CLI's own start (goal ≤ 0.3 s and ≤ 10x bare Python);
- ``agentlog publish RootAgentRegistered --json …``: one event published to the local stack
  and acknowledged (goal ≤ 0.6 s end to end);
- ``agentlog tail … --max 1``: the first record of a topic read back and printed (goal ≤ 0.6 s).

With ``--baseline WORKTREE`` (a checkout of an earlier commit), the same three commands also
run from that checkout (``python -m agentlog.cli.main`` in it, with it first on ``PYTHONPATH``), in
the same rounds: what the change bought.

Run: ``python bench/cli.py`` (``--rounds 15``, ``--baseline /tmp/before``); scratch topics are
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import measure

from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE


@dataclass(frozen=True)
class Command:
    label: str
    argv: list[str]
    goal_s: float | None
    """At most this many seconds (median), or None: the floor (or a baseline's command: no goal)."""
    goal_times: float | None = None
    """And at most this many times the floor (median of the per-round ratios)."""
    checkout: Path | None = None
    """Run from this checkout instead of the installed agentlog."""


def agentlog_argv(*args: str) -> list[str]:
    """The console script users run when it is installed beside this interpreter, else the module."""
    script = shutil.which("agentlog")
    return [script, *args] if script else measure.agentlog_command(*args)


def commands(settings: Settings, baseline: Path | None) -> list[Command]:
    event = {
        "meta": {"tenant_id": "bench"},
        "agent_id": "root-1",
        "config": "orchestrator",
        "token_budget": 1000,
        "spawn_budget": 1,
    }
    topic = settings.topic_prefix + AGENT_LIFECYCLE.name
    ours = [
        Command("agentlog --help", agentlog_argv("--help"), 0.3, 10.0),
        Command(
            "agentlog publish (one event)",
            agentlog_argv("publish", "RootAgentRegistered", "--json", json.dumps(event)),
            0.6,
        ),
        Command("agentlog tail --max 1", agentlog_argv("tail", topic, "--from-beginning", "--max", "1"), 0.6),
    ]
    before = []
    if baseline is not None:
        before = [
            Command(f"{c.label} at {baseline.name}", measure.agentlog_command(*_args(c.argv)), None, checkout=baseline)
            for c in ours
        ]
    return [Command("python -c pass", [sys.executable, "-c", "pass"], None), *ours, *before]


def _args(argv: list[str]) -> list[str]:
    """The CLI's own arguments of an ``agentlog`` argv (either form)."""
    return argv[3:] if argv[:3] == measure.agentlog_command() else argv[1:]


def timed(command: Command, env: dict[str, str]) -> float:
    cwd = None
    if command.checkout is not None:  # python -m puts the working directory first: run it there
        env, cwd = {**env, "PYTHONPATH": str(command.checkout)}, command.checkout
    started = time.perf_counter()
    done = subprocess.run(command.argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command.label} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier commit to run beside")
    args = parser.parse_args()
    scratch = measure.Scratch(Settings())
    print(f"CLI start-up benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}", flush=True)
    try:
        settings = scratch.settings("cli")
        env = measure.child_env(settings)
        table = commands(settings, args.baseline)
        series = {c.label: measure.Series(c.label, unit=" s") for c in table}
        for command in table:  # once each, unmeasured: the page cache and the broker's metadata warmed
            timed(command, env)
        for _ in range(args.rounds):
            for command in table:
                series[command.label].add(timed(command, env))
    finally:
        scratch.clean()
    floor = series[table[0].label]
    measure.print_table(f"wall time per command, {args.rounds} rounds", list(series.values()), value_fmt=".3f")
    print()
    for command in table[1:]:
        if command.goal_s is None:
            continue
        row = series[command.label]
        times = statistics.median(v / f for v, f in zip(row.values, floor.values, strict=True))
        assert command.goal_s is not None
        met = row.median <= command.goal_s and (command.goal_times is None or times <= command.goal_times)
        goal = f"{command.goal_s} s" + (f" and {command.goal_times:.0f}x" if command.goal_times else "")
        verdict = "meets" if met else "misses"
        print(f"  {command.label:<32} {row.median:.3f} s, {times:.1f}x bare Python: {verdict} the goal of {goal}")
        before = series.get(f"{command.label} at {args.baseline.name}") if args.baseline else None
        if before is not None:
            print(
                f"  {'':<32} {before.median:.3f} s at {args.baseline.name}: {before.median / row.median:.1f}x as long"
            )


if __name__ == "__main__":
    main()
