"""Signed inputs in the gate's core: the keyring says who signed a record, the core who may send it.

Records are signed for real (:func:`agentlog.signing.sign_batch`) and attributed by a real
:class:`~agentlog.keyring.Keyring` built from encoded keyring records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from agentlog import events as ev
from agentlog.keyring import UNSIGNED, Attribution, Keyring
from agentlog.processors.spawn_gate import decide
from agentlog.processors.testing import START, GateScenario, small_policy
from agentlog.records import Record
from agentlog.serde import Serde
from agentlog.signing import SIGNATURE_HEADER, SigningKey, sign_batch
from agentlog.topics import key_of, topic_of

SERDE = Serde()
OPEN = small_policy()
STRICT = small_policy(require_signatures=True)
_R = ev.DenialReason

ACME_RUNTIME = SigningKey.generate()
EVIL_RUNTIME = SigningKey.generate()
OPERATOR = SigningKey.generate()
MALLORY = SigningKey.generate()
EXPIRING = SigningKey.generate()
REVOKED = SigningKey.generate()
UNPUBLISHED = SigningKey.generate()
EXPIRY = START + timedelta(seconds=30)


def _published(
    key: SigningKey, principal: str, tenant: str | None, agent: str | None = None, **fields: object
) -> ev.Event:
    meta = ev.Meta(tenant_id=tenant or "*", root_id=key.key_id, producer="test")
    return ev.SigningKeyPublished(
        meta=meta,
        key_id=str(fields.pop("key_id", key.key_id)),
        public_key=key.public_raw,
        tenant_id=tenant,
        agent_id=agent,
        principal=principal,
        published_by="test",
        **fields,  # type: ignore[arg-type]
    )


def _keyring(extra: list[ev.Event] | None = None) -> Keyring:
    events: list[ev.Event] = [
        _published(ACME_RUNTIME, "acme-runtime", "acme"),
        _published(EVIL_RUNTIME, "evil-runtime", "evil"),
        _published(OPERATOR, "operator", None),
        _published(MALLORY, "mallory", None),
        _published(EXPIRING, "acme-batch", "acme", expires_at=EXPIRY),
        _published(REVOKED, "acme-old", "acme"),
        ev.SigningKeyRevoked(
            meta=ev.Meta(tenant_id="acme", root_id=REVOKED.key_id, producer="test"),
            key_id=REVOKED.key_id,
            reason="leaked",
            revoked_by="test",
        ),
        *(extra or []),
    ]
    keyring = Keyring()
    for offset, event in enumerate(events):
        value = SERDE.encode(event, "agentlog.keyring")
        record = Record("agentlog.keyring", 0, offset, 0, key_of(event).encode(), value)
        keyring.apply(record, SERDE)
    return keyring


KEYRING = _keyring()


def _record(event: ev.Event, key: SigningKey | None, *, tamper: bool = False, at: int | None = None) -> Record:
    topic = topic_of(type(event)).name
    value = SERDE.encode(event, topic)
    headers = None
    if key is not None:
        (signature,) = sign_batch(key, [(topic, event.meta.root_id.encode(), value)])
        headers = [(SIGNATURE_HEADER, signature.encode())]
    if tamper:
        value = value[:-1] + bytes([value[-1] ^ 1])
    timestamp = at if at is not None else int(event.meta.occurred_at.timestamp() * 1000)
    return Record(topic, 0, 0, timestamp, event.meta.root_id.encode(), value, headers)


def _signing(key: SigningKey | None, keyring: Keyring = KEYRING, **kwargs: bool) -> Callable[[ev.Event], Attribution]:
    return lambda event: keyring.attribute(_record(event, key, **kwargs))


def _acme(policy: ev.Event | None = None) -> tuple[GateScenario, str, str]:
    """Acme's tree (root, a worker and its helper), built with the acme runtime's key."""
    gate = GateScenario(STRICT)
    gate.signer = _signing(ACME_RUNTIME)
    gate.register_root("root", tokens=50_000, spawns=10)
    worker = gate.spawned("root", tokens=5_000, spawns=2)
    helper = gate.spawned(worker, config="helper", tokens=500)
    return gate, worker, helper


KINDS = ["register", "spawn", "top_up", "usage", "started", "completed", "failed", "terminate"]


def _send(gate: GateScenario, kind: str, worker: str, requested_by: str | None = None) -> list[ev.Event]:
    match kind:
        case "register":
            return gate.register_root("root", tokens=1_000)
        case "spawn":
            return gate.spawn(worker, config="helper", tokens=10)
        case "top_up":
            return gate.top_up(worker, 100)
        case "usage":
            return gate.consume(worker, 10)
        case "started":
            return gate.start(worker)
        case "completed":
            return gate.complete(worker)
        case "failed":
            return gate.fail(worker)
        case _:
            return gate.terminate(worker, requested_by=requested_by or worker)


def _reasons(outputs: list[ev.Event]) -> list[object]:
    return [getattr(o, "reason", None) for o in outputs]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("signer", "policy", "reason"),
    [
        (_signing(ACME_RUNTIME, tamper=True), OPEN, _R.BAD_SIGNATURE),
        (_signing(UNPUBLISHED), OPEN, _R.UNKNOWN_KEY),
        (_signing(REVOKED), OPEN, _R.KEY_REVOKED),
        (_signing(EVIL_RUNTIME), OPEN, _R.SIGNER_NOT_AUTHORIZED),
        (_signing(MALLORY), OPEN, _R.SIGNER_NOT_AUTHORIZED),
        (_signing(None), STRICT, _R.UNSIGNED),
    ],
    ids=["tampered", "unknown-key", "revoked", "other-tenant", "platform-non-operator", "unsigned-when-required"],
)
def test_an_input_of_every_kind_its_signer_may_not_send_is_answered_and_changes_nothing(
    kind: str, signer: Callable[[ev.Event], Attribution], policy: object, reason: ev.DenialReason
) -> None:
    gate, worker, _ = _acme()
    before = gate.state.trees["root"].to_dict()
    gate.policy = policy  # type: ignore[assignment]
    gate.signer = signer
    outputs = _send(gate, kind, worker)
    assert _reasons(outputs) == [reason], outputs
    assert outputs[0].meta.tenant_id == "acme"
    message = str(outputs[0].message)  # type: ignore[attr-defined]
    assert "Nothing was changed." in message or message.startswith("Cannot"), message
    assert gate.state.trees["root"].to_dict() == before


def test_an_expired_key_signs_what_was_appended_before_its_expiry_only() -> None:
    gate, worker, _ = _acme()
    gate.now = EXPIRY - timedelta(seconds=2)
    gate.signer = _signing(EXPIRING)
    assert _reasons(gate.consume(worker, 10)) == [None]  # TokensCharged
    gate.now = EXPIRY
    (denied,) = gate.consume(worker, 10)
    assert isinstance(denied, ev.LifecycleRejected) and denied.reason is _R.KEY_EXPIRED
    assert "had expired" in denied.message


@pytest.mark.parametrize("kind", KINDS)
def test_unsigned_input_is_accepted_when_the_policy_does_not_require_signatures(kind: str) -> None:
    """Development mode: every kind decides as without signatures at all (a tree built unsigned)."""
    signed, worker, _ = _acme()
    unsigned = GateScenario(OPEN)
    unsigned.register_root("root", tokens=50_000, spawns=10)
    unsigned.spawned(unsigned.spawned("root", tokens=5_000, spawns=2), config="helper", tokens=500)
    signed.policy, signed.signer = OPEN, None
    assert _send(signed, kind, worker) == _send(unsigned, kind, worker)


def test_a_key_scoped_to_an_agent_acts_as_that_agent_only() -> None:
    gate, worker, helper = _acme()
    worker_key = SigningKey.generate()
    keyring = _keyring([_published(worker_key, "worker-runtime", "acme", agent=worker)])
    gate.signer = _signing(worker_key, keyring)
    assert isinstance(gate.spawn(worker, config="helper", tokens=10)[0], ev.SpawnApproved)
    assert isinstance(gate.consume(worker, 10)[0], ev.TokensCharged)
    (refused,) = gate.complete(helper)
    assert isinstance(refused, ev.LifecycleRejected) and refused.reason is _R.SIGNER_NOT_AUTHORIZED
    assert f"acts only as agent {worker}" in refused.message
    (refused_spawn,) = gate.spawn("root", tokens=10)
    assert isinstance(refused_spawn, ev.SpawnDenied) and refused_spawn.reason is _R.SIGNER_NOT_AUTHORIZED
    assert gate.state.trees["root"].agents[helper].active
    assert isinstance(gate.terminate(helper, requested_by=worker)[0], ev.AgentTerminated)  # its own child


def test_an_operator_terminates_with_its_platform_key_and_no_one_else_as_the_operator() -> None:
    gate, worker, helper = _acme()
    gate.signer = _signing(ACME_RUNTIME)
    (refused,) = gate.terminate(helper, requested_by="operator")
    assert isinstance(refused, ev.LifecycleRejected) and refused.reason is _R.SIGNER_NOT_AUTHORIZED
    assert "may not act as operator" in refused.message
    gate.signer = _signing(OPERATOR)
    assert isinstance(gate.terminate(helper, requested_by="operator")[0], ev.AgentTerminated)
    (not_as_agent,) = gate.terminate(worker, requested_by=worker)
    assert isinstance(not_as_agent, ev.LifecycleRejected) and not_as_agent.reason is _R.SIGNER_NOT_AUTHORIZED


def test_the_keyring_ignores_a_key_under_another_id_and_a_second_publication() -> None:
    impostor = SigningKey.generate()
    keyring = _keyring(
        [
            _published(impostor, "x", "acme", key_id=ACME_RUNTIME.key_id),
            _published(ACME_RUNTIME, "acme-runtime", "evil"),
        ]
    )
    assert keyring.keys[ACME_RUNTIME.key_id].tenant_id == "acme"
    assert keyring.keys[ACME_RUNTIME.key_id].public is not None
    assert len(keyring.problems) == 2
    assert "is not the key's own id" in keyring.problems[0] and "the first stands" in keyring.problems[1]
    assert keyring.position == 9


def test_core_version_2_decides_as_before_signatures() -> None:
    """Replay of a log written before core 3 ignores signatures, whatever the records carry."""
    gate, worker, _ = _acme()
    event = ev.TokensConsumed(meta=gate.meta("root"), agent_id=worker, tokens=5)
    bad = KEYRING.attribute(_record(event, ACME_RUNTIME, tamper=True))
    assert bad.reason is _R.BAD_SIGNATURE
    (charged,) = decide(gate.state, event, STRICT, core=2, attribution=bad)
    assert isinstance(charged, ev.TokensCharged)
    assert decide(gate.state, event, STRICT, core=3, attribution=UNSIGNED)[0].reason is _R.UNSIGNED  # type: ignore[attr-defined]
