"""``agentlog slo`` and ``agentlog report`` on workloads built to meet every SLO, and to breach each one."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from agentlog.events import Event
from agentlog.processors.policy import load_default_policy, to_event
from agentlog.projections.workload import ForestShape, forest

pytestmark = pytest.mark.timeout(240)

HEALTHY = ForestShape(roots=6, fanout=2, depth=2, denied_per_agent=0, handoffs=False, failures=False)
"""Every spawn approved, every child completes, trees two deep."""


def agentlog(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["agentlog", *args], capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def load(
    publish: Callable[[list[Event]], None], project: Callable[..., object], cli_env: dict[str, str], schema: str
) -> Callable[..., dict[str, str]]:
    """Publish and project a workload of recent trees (and a policy with ``limits``); the CLI's environment."""

    def load(*shapes: ForestShape, **limits: int) -> dict[str, str]:
        start = datetime.now(UTC) - timedelta(hours=3)
        events: list[Event] = []
        if limits:
            policy = load_default_policy()
            policy = policy.model_copy(update={"limits": policy.limits.model_copy(update=limits)})
            events.append(to_event(policy, published_by="tests"))
        for seed, shape in enumerate(shapes):
            events += forest(shape, seed=seed, start=start)
        publish(events)
        project()
        return {**cli_env, "AGENTLOG_DB_SCHEMA": schema, "COLUMNS": "200"}

    return load


def _slos(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, object]], str]:
    done = agentlog(env, "slo", "-o", "json", *args)
    assert done.returncode in (0, 3), done.stderr
    report = json.loads(done.stdout)
    return done.returncode, {s["slo"]: s for s in report["slos"]}, done.stderr


def test_a_healthy_workload_meets_every_slo(load: Callable[..., dict[str, str]]) -> None:
    env = load(HEALTHY, max_active_platform=1000)
    code, slos, _ = _slos(env)
    assert code == 0
    assert {name: s["status"] for name, s in slos.items()} == {
        "spawn_policy_violation_rate": "met",
        "child_completion_rate": "met",
        "average_spawn_depth": "met",
        "concurrent_agents": "met",
    }
    assert slos["spawn_policy_violation_rate"]["value"] == 0.0
    assert slos["child_completion_rate"]["value"] == 1.0
    assert slos["average_spawn_depth"]["value"] == 2.0
    pretty = agentlog(env, "slo")
    assert pretty.returncode == 0 and "Spawn policy violation rate" in pretty.stdout


def test_denied_spawns_breach_the_violation_rate(load: Callable[..., dict[str, str]]) -> None:
    env = load(ForestShape(roots=4, fanout=2, depth=2, denied_per_agent=1, handoffs=False, failures=False))
    code, slos, stderr = _slos(env)
    assert code == 3
    violations = slos["spawn_policy_violation_rate"]
    assert violations["status"] == "alert"
    # Per tree: 6 approved children, and one denial under each of the 3 parents with children.
    assert violations["value"] == pytest.approx(3 / 9)
    assert "spawn_policy_violation_rate" in stderr and "P2" in stderr
    assert slos["child_completion_rate"]["status"] == "met"


def test_failing_children_breach_the_completion_rate(load: Callable[..., dict[str, str]]) -> None:
    env = load(ForestShape(roots=4, fanout=3, depth=2, denied_per_agent=0, handoffs=False, failures=True))
    code, slos, stderr = _slos(env)
    assert code == 3
    assert slos["child_completion_rate"]["status"] == "alert"
    assert slos["child_completion_rate"]["value"] < 0.93
    assert "child_completion_rate" in stderr
    assert slos["spawn_policy_violation_rate"]["status"] == "met"


def test_deep_trees_breach_the_average_depth(load: Callable[..., dict[str, str]]) -> None:
    env = load(ForestShape(roots=2, fanout=1, depth=3, denied_per_agent=0, handoffs=False, failures=False))
    code, slos, stderr = _slos(env)
    assert code == 3
    assert slos["average_spawn_depth"] == {**slos["average_spawn_depth"], "value": 3.0, "status": "alert"}
    assert "average_spawn_depth" in stderr and "P3" in stderr


def test_more_active_agents_than_the_platform_limit_is_a_breach(load: Callable[..., dict[str, str]]) -> None:
    shape = ForestShape(roots=3, fanout=2, depth=2, denied_per_agent=0, handoffs=False, lifecycle=False)
    env = load(shape, max_active_platform=10, max_active_per_tenant=50)
    code, slos, stderr = _slos(env)
    assert code == 3
    assert slos["concurrent_agents"]["value"] == 21  # 3 trees of 7 agents, none ended
    assert slos["concurrent_agents"]["status"] == "alert"
    assert "concurrent_agents" in stderr and "P1" in stderr
    code, slos, _ = _slos(env, "--tenant", "tenant-a")
    assert code == 0 and slos["concurrent_agents"]["status"] == "met"  # against the tenant cap of 50
    code, slos, _ = _slos(env, "--tenant", "nobody")
    assert code == 0 and slos["concurrent_agents"]["value"] == 0


def test_a_window_before_the_workload_has_no_data_and_no_breach(load: Callable[..., dict[str, str]]) -> None:
    env = load(ForestShape(roots=2, fanout=2, depth=3, denied_per_agent=1, handoffs=False))
    code, slos, _ = _slos(env, "--window", "1h", "--at", "5h")
    assert code == 0
    assert [s["status"] for name, s in slos.items() if name != "concurrent_agents"] == ["no data"] * 3


def test_a_missed_target_fails_only_with_fail_on_target(load: Callable[..., dict[str, str]]) -> None:
    healthy = ForestShape(roots=20, fanout=2, depth=2, denied_per_agent=0, handoffs=False, failures=False)
    denied = ForestShape(roots=2, fanout=1, depth=1, denied_per_agent=1, handoffs=False, failures=False)
    env = load(healthy, denied)
    code, slos, _ = _slos(env)
    # 2 denials of 124 requests: 1.6 %, short of the 1 % target but under the 3 % alert threshold.
    assert code == 0
    assert slos["spawn_policy_violation_rate"]["value"] == pytest.approx(2 / 124)
    assert slos["spawn_policy_violation_rate"]["status"] == "missed"
    code, _, stderr = _slos(env, "--fail-on", "target")
    assert code == 3 and "short of its target: spawn_policy_violation_rate 1.61 %" in stderr


def test_fail_on_never(load: Callable[..., dict[str, str]]) -> None:
    env = load(ForestShape(roots=2, fanout=1, depth=3, denied_per_agent=0, handoffs=False, failures=False))
    assert _slos(env)[0] == 3
    assert _slos(env, "--fail-on", "never")[0] == 0


def test_bad_options_are_exit_2(load: Callable[..., dict[str, str]]) -> None:
    env = load(HEALTHY)
    for args, named in (
        (["--window", "soon"], "--window"),
        (["--window", "0h"], "--window"),
        (["--at", "yesterday-ish"], "--at"),
        (["--serve"], "--serve exports metrics"),
    ):
        done = agentlog(env, "slo", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert named in done.stderr


def test_the_weekly_report_writes_markdown_and_charts(load: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    env = load(ForestShape(roots=4, fanout=2, depth=2, denied_per_agent=1, handoffs=False))
    printed = agentlog(env, "report", "--since", "7d")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# Spawn depth and budget utilisation: the platform")
    assert "| child agents spawned | 24 |" in printed.stdout
    assert "| DEPTH_EXCEEDED |" in printed.stdout
    written = agentlog(env, "report", "--since", "7d", "--out", str(tmp_path / "week"))
    assert written.returncode == 0, written.stderr
    report = (tmp_path / "week" / "report.md").read_text()
    for chart in ("depth.svg", "spawns.svg", "utilisation.svg"):
        assert f"]({chart})" in report
        svg = ElementTree.parse(tmp_path / "week" / chart).getroot()
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        assert svg.findall(".//{http://www.w3.org/2000/svg}rect"), f"{chart} draws bars"
    bad = agentlog(env, "report", "--since", "1d", "--until", "2d")
    assert bad.returncode == 2 and "--since" in bad.stderr
