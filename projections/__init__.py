"""PostgreSQL projections of the agentlog topics: lineage and a hash-chained audit log.

* :mod:`projections.migrate` creates and upgrades the tables (``agentlog db migrate``);
* :mod:`projections.projector` consumes every topic and writes the tables exactly once;
* :mod:`projections.lineage` and :mod:`projections.audit` answer the queries;
* :mod:`projections.audit_chain` is the pure hash-chain function ``replay verify`` shares.
"""
