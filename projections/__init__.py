"""PostgreSQL projections of the agentlog topics: lineage and a hash-chained audit log.

* :mod:`agentlog.projections.migrate` creates and upgrades the tables (``agentlog db migrate``);
* :mod:`agentlog.projections.projector` consumes every topic and writes the tables exactly once;
* :mod:`agentlog.projections.lineage` and :mod:`agentlog.projections.audit` answer the queries;
* :mod:`agentlog.projections.audit_chain` is the pure hash-chain function ``replay verify`` shares.
"""
