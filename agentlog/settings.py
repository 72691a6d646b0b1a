"""Settings of every agentlog process, read from ``AGENTLOG_*`` environment variables.

A field is given to :class:`Settings` as an argument, else read from ``AGENTLOG_<FIELD>``
(any case), else it has its default; pydantic validates the strings as it validates
arguments, and a dict field (``kafka_extra``) is read as a JSON object. The reader is ours,
not pydantic-settings': the same rules for these fields, and 85 ms less at every command's
start (its import, with asyncio's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ENV_PREFIX = "AGENTLOG_"


class Settings(BaseModel):
    """Where the broker, the database and the optional schema registry are.

    The defaults match the local stack of ``deploy/local`` (``make up``).
    """

    model_config = ConfigDict(extra="ignore")

    def __init__(self, /, **values: Any) -> None:
        """Each field from ``values``, else from its ``AGENTLOG_*`` variable, else its default."""
        super().__init__(**{**from_environment(os.environ), **values})

    bootstrap_servers: str = "127.0.0.1:19092"
    """Kafka bootstrap servers, comma separated."""
    database_url: SecretStr = SecretStr("postgresql://agentlog:agentlog@127.0.0.1:15432/agentlog")
    """PostgreSQL connection string for the projections."""
    schema_registry_url: str | None = None
    """When set, events are written in the Confluent wire format with ids from this registry."""
    topic_prefix: str = ""
    """Prepended to every topic name (``<prefix>agentlog.spawn.requests``); isolates tests and tenants."""
    producer_name: str = "agentlog"
    """Default ``meta.producer`` of events this process emits."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers (``SASL_SSL`` for the secure stack: TLS, then SCRAM)."""
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    """The SASL mechanism of the ``SASL_*`` protocols."""
    sasl_username: str | None = None
    """The Kafka principal this process authenticates as (``User:<name>``); the ACLs say what it may do."""
    sasl_password: SecretStr | None = None
    """Its password; never printed, logged or put in an error."""
    ssl_ca_location: Path | None = None
    """A PEM file with the CA certificates that sign the brokers' (None: the system's trust store)."""
    kafka_extra: dict[str, str] = {}
    """Extra librdkafka properties, as a JSON object; they override the ones above."""
    connect_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    """How long a command waits for the broker to answer before it gives up with "cannot reach Kafka"."""
    signing_key: Path | None = None
    """A PEM file with the Ed25519 private key this process signs the records it publishes with
    (``agentlog keys create`` writes one); None: records go unsigned, which a policy with
    ``limits.require_signatures`` denies."""
    tree_partitions: int | None = Field(default=None, ge=1, le=10_000)
    """Partitions of the tree-keyed topics when ``topics create`` makes them (None: the count the
    deployment's existing topics have, or 12 for a new one). Every component reads the count
    from the broker; it is never changed in place."""

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Self:
        if self.security_protocol.startswith("SASL_"):
            for name in ("sasl_username", "sasl_password"):
                if getattr(self, name) is None and f"sasl.{name[5:]}" not in self.kafka_extra:
                    raise ValueError(
                        f"AGENTLOG_{name.upper()} is needed with AGENTLOG_SECURITY_PROTOCOL={self.security_protocol}"
                    )
        return self


def connection_env(settings: Settings) -> dict[str, str]:
    """The ``AGENTLOG_*`` variables that point another process at the same deployment, as the same principal."""
    env = {
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AGENTLOG_DATABASE_URL": settings.database_url.get_secret_value(),
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
    }
    if settings.security_protocol != "PLAINTEXT":
        env["AGENTLOG_SECURITY_PROTOCOL"] = settings.security_protocol
        env["AGENTLOG_SASL_MECHANISM"] = settings.sasl_mechanism
    if settings.sasl_username is not None:
        env["AGENTLOG_SASL_USERNAME"] = settings.sasl_username
    if settings.sasl_password is not None:
        env["AGENTLOG_SASL_PASSWORD"] = settings.sasl_password.get_secret_value()
    if settings.ssl_ca_location is not None:
        env["AGENTLOG_SSL_CA_LOCATION"] = str(settings.ssl_ca_location)
    return env


def _read_as_json(name: str) -> bool:
    """Whether the field ``name`` holds a collection, which a variable gives as JSON (as pydantic-settings read it)."""
    annotation = Settings.model_fields[name].annotation
    return (get_origin(annotation) or annotation) in (dict, list, set, tuple)


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``environ`` sets, by field name: ``AGENTLOG_<FIELD>`` in any case, JSON for dict fields."""
    named = {key.upper(): value for key, value in environ.items() if key[: len(ENV_PREFIX)].upper() == ENV_PREFIX}
    found: dict[str, Any] = {}
    for name in Settings.model_fields:
        variable = ENV_PREFIX + name.upper()
        if variable not in named:
            continue
        raw = named[variable]
        if _read_as_json(name):
            try:
                found[name] = json.loads(raw)
            except ValueError:
                found[name] = raw  # refused by validation, which names the variable (never its value)
        else:
            found[name] = raw
    return found


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
