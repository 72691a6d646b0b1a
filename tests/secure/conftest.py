"""The secure stack (``AGENTLOG_SECURITY=sasl_ssl``): TLS, SCRAM users and ACLs, beside the plain one.

Its own broker and PostgreSQL, on their own ports and state directory; started here when it
is not running, and stopped at the end of the session if it was started here. Each test gets
its own topic prefix; the admin creates its topics and grants the stack's users their roles
on them, and removes both afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator

import pytest

from agentlog import access
from agentlog.access import Role
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import DEPLOYED
from tests.support import REPO

from .support import Deployment, SecureStack

STACK = str(REPO / "deploy/local/stack.sh")
USERS = {
    "gate": Role.gate,
    "missions": Role.missions,
    "bus": Role.bus,
    "projector": Role.projector,
    "auditor": Role.auditor,
    "tenant-acme": Role.tenant,
}
"""The stack's users and the role each test grants them (tenant-globex gets none: it may do nothing)."""


def _stack_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    return {**env, "AGENTLOG_SECURITY": "sasl_ssl"}


def _exports(user: str) -> dict[str, str]:
    out = subprocess.run(["bash", STACK, "env", user], env=_stack_env(), check=True, capture_output=True, text=True)
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    return {k: shlex.split(v)[0] for k, v in pairs}


@pytest.fixture(scope="session")
def secure_stack() -> Iterator[SecureStack]:
    """The running secure stack (started if need be)."""
    status = subprocess.run(["bash", STACK, "status"], check=False, env=_stack_env(), capture_output=True)
    running = status.returncode == 0
    if not running:
        subprocess.run(["bash", STACK, "up"], env=_stack_env(), check=True, stdout=subprocess.DEVNULL)
    try:
        yield SecureStack({user: _exports(user) for user in ("admin", *USERS, "tenant-globex")})
    finally:
        if not running:
            subprocess.run(["bash", STACK, "down"], env=_stack_env(), check=False, stdout=subprocess.DEVNULL)


@pytest.fixture
def deployment(secure_stack: SecureStack, unique_name: str) -> Iterator[Deployment]:
    """This test's topics on the secure stack, and the stack's users granted their roles on them."""
    deployment = Deployment(secure_stack, f"{unique_name}.")
    admin = deployment.as_user("admin")
    ensure_topics(admin)
    for user, role in USERS.items():
        access.grant(admin, role, user)
    yield deployment
    for user, role in {**USERS, "tenant-globex": Role.tenant}.items():  # `access bootstrap` grants globex too
        access.revoke(admin, role, user)
    delete_topics(admin, [admin.topic_prefix + spec.name for spec in DEPLOYED])
