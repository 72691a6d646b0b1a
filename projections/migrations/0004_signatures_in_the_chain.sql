-- Chain link version 2 puts each record's signature inside the hash chain
-- (agentlog.projections.audit_chain). Rows projected before keep version 1 and verify as
-- they were written; every row projected from now on names its version (no default, so
-- that nothing can write a row without saying how it was hashed).
ALTER TABLE audit_log ADD COLUMN chain_version smallint NOT NULL DEFAULT 1,
                      ADD COLUMN signature text;
ALTER TABLE audit_log ALTER COLUMN chain_version DROP DEFAULT;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_chain_version CHECK (chain_version IN (1, 2));
