"""``agentlog keys``: signing keys of tenant runtimes, agents and operators, and the keyring that holds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from agentlog.cli.output import EXIT_BAD_INPUT, fail, fail_for, kafka_settings
from agentlog.errors import AgentlogError
from agentlog.keyring_admin import entries, publish_key, read_keyring, revoke_key
from agentlog.settings import Settings
from agentlog.signing import SigningError, SigningKey, key_id_of, load_public_key

app = typer.Typer(help="Signing keys and the keyring.", no_args_is_help=True)


Principal = Annotated[str, typer.Option(help="Who holds the key: a runtime's name or an operator's identity.")]
Tenant = Annotated[str | None, typer.Option(help="The tenant whose records the key signs.")]
Agent = Annotated[str | None, typer.Option(help="Scope the key to this one agent of the tenant.")]
Platform = Annotated[
    bool, typer.Option("--platform", help="A platform key (no tenant): signs only as an operator of the policy.")
]
ValidDays = Annotated[int | None, typer.Option(min=1, help="Days the key is valid (default: no expiry).")]
PublishedBy = Annotated[str, typer.Option(help="Who publishes (recorded in the event).")]


@app.command("create")
def create(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the private key (PEM, mode 0600); not overwritten.")
    ],
    principal: Principal,
    tenant: Tenant = None,
    agent: Agent = None,
    platform: Platform = False,
    valid_days: ValidDays = None,
    published_by: PublishedBy = "agentlog-cli",
) -> None:
    """Generate an Ed25519 key, write its private half to --out and put its public half on the keyring.

    A process signs with it when ``AGENTLOG_SIGNING_KEY`` names the file. To keep a private key
    on the host that uses it, run ``keys generate`` there and publish its public half with ``keys add``.
    """
    _check_scope(tenant, agent, platform)
    settings = kafka_settings()
    key = SigningKey.generate()
    try:
        key.save(out)
    except SigningError as e:
        fail(str(e), EXIT_BAD_INPUT)
    try:
        offset = _publish(key.public_raw, principal, tenant, agent, valid_days, published_by, settings)
    except typer.Exit:
        out.unlink(missing_ok=True)  # nothing half-done: no key file whose key is not on the keyring
        raise
    scope = f"tenant {tenant}" if tenant is not None else "platform"
    print(f"created key {key.key_id} ({principal}, {scope}) in {out}; on the keyring at offset {offset}")


@app.command("generate")
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the private key (PEM, mode 0600); not overwritten.")
    ],
) -> None:
    """Generate a key on this host without publishing it: the private key to --out, its public half to
    --out with ``.pub`` appended, for an admin to put on the keyring with ``keys add``."""
    key = SigningKey.generate()
    public = out.with_name(out.name + ".pub")
    try:
        key.save(out)
    except SigningError as e:
        fail(str(e), EXIT_BAD_INPUT)
    key.save_public(public)
    print(f"generated key {key.key_id} in {out}; its public half is in {public}")


@app.command("add")
def add(
    public_key: Annotated[Path, typer.Argument(help="PEM file of the Ed25519 public key (or of its private key).")],
    principal: Principal,
    tenant: Tenant = None,
    agent: Agent = None,
    platform: Platform = False,
    valid_days: ValidDays = None,
    published_by: PublishedBy = "agentlog-cli",
) -> None:
    """Put an existing Ed25519 public key on the keyring (the private key stays where it was made)."""
    _check_scope(tenant, agent, platform)
    try:
        public_raw = load_public_key(public_key)
    except SigningError as e:
        fail(str(e), EXIT_BAD_INPUT)
    offset = _publish(public_raw, principal, tenant, agent, valid_days, published_by, kafka_settings())
    scope = f"tenant {tenant}" if tenant is not None else "platform"
    print(f"added key {key_id_of(public_raw)} ({principal}, {scope}); on the keyring at offset {offset}")


def _check_scope(tenant: str | None, agent: str | None, platform: bool) -> None:
    if platform == (tenant is not None):
        fail("give either --tenant TENANT or --platform", EXIT_BAD_INPUT)
    if platform and agent is not None:
        fail("--agent scopes a tenant's key; a platform key has no agent", EXIT_BAD_INPUT)


def _publish(
    public_raw: bytes,
    principal: str,
    tenant: str | None,
    agent: str | None,
    valid_days: int | None,
    published_by: str,
    settings: Settings,
) -> int:
    """Publish the key; its offset on the keyring (a failure exits, as ``fail_for`` does)."""
    expires = datetime.now(UTC) + timedelta(days=valid_days) if valid_days is not None else None
    try:
        delivery = publish_key(
            settings,
            public_raw,
            principal=principal,
            tenant_id=tenant,
            agent_id=agent,
            expires_at=expires,
            published_by=published_by,
        )
    except AgentlogError as e:
        fail_for(e)
    return delivery.offset


@app.command("list")
def list_keys() -> None:
    """Print every key on the keyring: id, tenant, agent, principal, expiry, revoked."""
    settings = kafka_settings()
    try:
        keyring = read_keyring(settings)
    except AgentlogError as e:
        fail_for(e)
    print(f"{'KEY':<42} {'TENANT':<16} {'AGENT':<20} {'PRINCIPAL':<20} {'EXPIRES':<25} STATE")
    for entry in entries(keyring):
        expires = (
            datetime.fromtimestamp(entry.expires_at_ms / 1000, UTC).isoformat(timespec="seconds")
            if entry.expires_at_ms is not None
            else "-"
        )
        state = "revoked" if entry.revoked else "active"
        print(
            f"{entry.key_id:<42} {entry.tenant_id or '(platform)':<16} {entry.agent_id or '-':<20}"
            f" {entry.principal:<20} {expires:<25} {state}"
        )
    for problem in keyring.problems:
        print(f"ignored: {problem}")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key to revoke (ed25519:…).")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the event).")],
    revoked_by: Annotated[str, typer.Option(help="Who revokes (recorded in the event).")] = "agentlog-cli",
) -> None:
    """Revoke a key for good: from the gate's next decision on, nothing signed with it is accepted."""
    settings = kafka_settings()
    try:
        delivery = revoke_key(settings, key_id, reason=reason, revoked_by=revoked_by)
    except AgentlogError as e:
        fail_for(e)
    print(f"revoked key {key_id} at offset {delivery.offset}")
