"""The spawn gate's freezes (core version 5): who may freeze and thaw a tree, spawns denied TREE_FROZEN meanwhile,
every other request rejected with a reason and no change, and older cores ignoring both records."""

from __future__ import annotations

import uuid

from agentlog import events as ev
from agentlog.processors.freeze import BUS
from agentlog.processors.spawn_gate import decide
from agentlog.processors.testing import GateScenario, one, small_policy
from agentlog.processors.tree_state import TreeState

R = ev.DenialReason


def _gate() -> GateScenario:
    gate = GateScenario(small_policy())
    one(gate.register_root("root"), ev.RootAdmitted)
    return gate


def _freeze(gate: GateScenario, by: str = BUS, root: str = "root", tenant: str | None = None) -> list[ev.Event]:
    alert = uuid.uuid4()
    return gate.send(ev.TreeFreezeRequested(meta=gate.meta(root, tenant), requested_by=by, alert_id=alert,
                                            alerted_by=f"{root}/w", reason="disk full"))  # fmt: skip


def _thaw(gate: GateScenario, by: str = "operator", root: str = "root") -> list[ev.Event]:
    return gate.send(ev.TreeThawRequested(meta=gate.meta(root), requested_by=by, reason="fixed"))


def _rejected(outputs: list[ev.Event]) -> ev.LifecycleRejected:
    rejected = one(outputs, ev.LifecycleRejected)
    assert rejected.agent_id == "root" and "Nothing was changed" in rejected.message
    return rejected


def test_a_frozen_tree_denies_every_spawn_until_an_operator_thaws_it() -> None:
    gate = _gate()
    worker = gate.spawned("root")
    frozen = one(_freeze(gate), ev.TreeFrozen)
    assert frozen.requested_by == BUS and frozen.alert_id is not None and "disk full" in frozen.message
    assert gate.state.trees["root"].frozen_by == BUS
    for parent in ("root", worker):
        denied = one(gate.spawn(parent, config="worker" if parent == "root" else "helper"), ev.SpawnDenied)
        assert denied.reason is R.TREE_FROZEN and "frozen" in denied.message
    assert [type(o) for o in gate.consume(worker, 10)] == [ev.TokensCharged]  # running agents go on
    thawed = one(_thaw(gate), ev.TreeThawed)
    assert thawed.requested_by == "operator" and gate.state.trees["root"].frozen_by is None
    one(gate.spawn("root"), ev.SpawnApproved)


def test_frozen_denials_do_not_open_the_circuit() -> None:
    gate = _gate()
    one(_freeze(gate), ev.TreeFrozen)
    for _ in range(10):  # twice the circuit's threshold of 5
        assert one(gate.spawn("root"), ev.SpawnDenied).reason is R.TREE_FROZEN
    one(_thaw(gate), ev.TreeThawed)
    one(gate.spawn("root"), ev.SpawnApproved)


def test_who_may_freeze() -> None:
    """The bus, an operator and an active agent of the tree may; a stranger may not."""
    for requester in (BUS, "operator", "root"):
        gate = _gate()
        assert one(_freeze(gate, by=requester), ev.TreeFrozen).requested_by == requester
    gate = _gate()
    assert _rejected(_freeze(gate, by="stranger")).reason is R.NOT_AN_OPERATOR
    assert gate.state.trees["root"].frozen_by is None


def test_only_an_operator_thaws_and_only_a_frozen_tree() -> None:
    gate = _gate()
    assert _rejected(_thaw(gate)).reason is R.NOT_FROZEN
    one(_freeze(gate), ev.TreeFrozen)
    for requester in ("root", BUS, "stranger"):
        assert _rejected(_thaw(gate, by=requester)).reason is R.NOT_AN_OPERATOR
    assert gate.state.trees["root"].frozen_by == BUS
    assert _rejected(_freeze(gate, by="operator")).reason is R.TREE_FROZEN  # a second freeze changes nothing
    assert gate.state.trees["root"].frozen_by == BUS


def test_unknown_ended_and_foreign_trees_are_rejected() -> None:
    gate = _gate()
    assert _rejected_for(_freeze(gate, root="nowhere"), "nowhere").reason is R.UNKNOWN_AGENT
    assert _rejected(_freeze(gate, tenant="globex")).reason is R.TENANT_MISMATCH
    assert gate.state.trees["root"].frozen_by is None
    gate.complete("root")
    assert _rejected(_freeze(gate)).reason is R.AGENT_NOT_ACTIVE


def _rejected_for(outputs: list[ev.Event], root: str) -> ev.LifecycleRejected:
    rejected = one(outputs, ev.LifecycleRejected)
    assert rejected.agent_id == root
    return rejected


def test_the_freeze_survives_the_changelog() -> None:
    gate = _gate()
    one(_freeze(gate, by="operator"), ev.TreeFrozen)
    tree = gate.state.trees["root"]
    restored = TreeState.from_dict(tree.to_dict())
    assert restored.frozen_by == "operator"
    assert "frozen_by" not in TreeState.from_dict({**tree.to_dict(), "frozen_by": None}).header()


def test_cores_before_5_ignore_freezes_and_thaws() -> None:
    gate = _gate()
    freeze = ev.TreeFreezeRequested(meta=gate.meta("root"), requested_by=BUS)
    thaw = ev.TreeThawRequested(meta=gate.meta("root"), requested_by="operator")
    assert decide(gate.state, freeze, gate.policy, core=4) == []
    assert decide(gate.state, thaw, gate.policy, core=4) == []
    assert gate.state.trees["root"].frozen_by is None
