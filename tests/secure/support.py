"""The secure stack's users and one test's deployment on it (the fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

from agentlog.settings import Settings
from tests.support import TEST_TREE_PARTITIONS


@dataclass(frozen=True)
class SecureStack:
    """The secure stack's address and its users' environments."""

    users: dict[str, dict[str, str]]

    def settings(self, user: str, prefix: str = "", **overrides: object) -> Settings:
        """Settings that authenticate as ``user`` (``None``-less: every connection setting from the stack)."""
        env = self.users[user]
        return Settings(
            bootstrap_servers=env["AGENTLOG_BOOTSTRAP_SERVERS"],
            database_url=env["AGENTLOG_DATABASE_URL"],  # type: ignore[arg-type]
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=env["AGENTLOG_SASL_USERNAME"],
            sasl_password=env["AGENTLOG_SASL_PASSWORD"],  # type: ignore[arg-type]
            ssl_ca_location=env["AGENTLOG_SSL_CA_LOCATION"],  # type: ignore[arg-type]
            topic_prefix=prefix,
            schema_registry_url=None,
            tree_partitions=TEST_TREE_PARTITIONS,
            **overrides,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Deployment:
    """One test's deployment on the secure stack: its topic prefix, with topics and ACLs in place."""

    stack: SecureStack
    prefix: str

    def as_user(self, user: str, **overrides: object) -> Settings:
        """Settings of ``user`` for this deployment."""
        return self.stack.settings(user, self.prefix, **overrides)
