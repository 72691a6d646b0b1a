-- What each recorded `replay verify --record` run found, so that operators (and the console)
-- see when the audit log was last verified and with what result. Only an auditor adds a row
-- (agentlog_auditor: INSERT and SELECT); nobody but the schema's owner may change or delete
-- one, and a trigger refuses that too unless the owner disables it on purpose. Who recorded
-- a row and when are the database's to say, not the inserting client's.

CREATE TABLE audit_verifications (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    recorded_by    text        NOT NULL,
    topic_prefix   text        NOT NULL,
    checked        jsonb       NOT NULL,  -- what was checked: deep, signatures, max_lag, checkpoint signer, version
    clean          boolean     NOT NULL,  -- no difference, no lag beyond max_lag, no invalid signature
    kafka_records  bigint      NOT NULL,
    audit_rows     bigint      NOT NULL,
    differences    jsonb       NOT NULL,  -- count per kind
    partitions     jsonb       NOT NULL,  -- per topic[partition]: records, rows, lag, oldest lag, kinds, anchor
    findings       jsonb       NOT NULL,  -- the differences themselves (the first 1000)
    anchors        text        NOT NULL   -- how the checkpoints were judged
);
CREATE INDEX audit_verifications_newest ON audit_verifications (finished_at DESC);

CREATE FUNCTION audit_verification_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'audit_verifications rows are never changed or deleted';
    END IF;
    NEW.recorded_by := session_user;
    NEW.finished_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_verification_stamp BEFORE INSERT OR UPDATE OR DELETE ON audit_verifications
    FOR EACH ROW EXECUTE FUNCTION audit_verification_stamp();

REVOKE ALL ON audit_verifications FROM PUBLIC;
GRANT SELECT, INSERT ON audit_verifications TO agentlog_auditor;
