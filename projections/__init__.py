"""PostgreSQL projections of the agentlog topics: lineage and a hash-chained audit log.

* :mod:`agentlog.projections.migrate` creates and upgrades the tables (``agentlog db migrate``);
* :mod:`agentlog.projections.projector` consumes every topic and writes the tables exactly once;
* :mod:`agentlog.projections.lineage` and :mod:`agentlog.projections.audit` answer the queries;
* :mod:`agentlog.projections.audit_chain` is the pure hash-chain function ``replay verify`` shares.

``__all__`` is the face other packages use (replay, the CLI's callers, the benchmarks); the
modules behind it are internals of this package.
"""

from agentlog.projections.audit_chain import (
    CHAIN_VERSION,
    GENESIS,
    ROW_HASH_SQL,
    ChainedRecord,
    PartitionChain,
    chained,
    link,
    signature_of,
)
from agentlog.projections.batch import Batch, build_batch
from agentlog.projections.batch import PartitionState as ProjectedPartition
from agentlog.projections.checksums import table_checksums
from agentlog.projections.db import (
    DEFAULT_SCHEMA,
    Conn,
    check_schema_name,
    connect,
    drop_schema,
    projected_offsets,
    require_tables,
    tenant_schema,
)
from agentlog.projections.errors import ProjectionError
from agentlog.projections.migrate import migrate
from agentlog.projections.projector import Projector, ProjectorOptions
from agentlog.projections.roles import is_auditor

__all__ = [
    "CHAIN_VERSION",
    "DEFAULT_SCHEMA",
    "GENESIS",
    "ROW_HASH_SQL",
    "Batch",
    "ChainedRecord",
    "Conn",
    "PartitionChain",
    "ProjectedPartition",
    "ProjectionError",
    "Projector",
    "ProjectorOptions",
    "build_batch",
    "chained",
    "check_schema_name",
    "connect",
    "drop_schema",
    "is_auditor",
    "link",
    "migrate",
    "projected_offsets",
    "require_tables",
    "signature_of",
    "table_checksums",
    "tenant_schema",
]
