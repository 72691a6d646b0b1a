-- Least privilege: one role model for the projections.
--
--   the schema's owner      the login that runs `agentlog db migrate`: migrates and administers
--                           (it owns the tables, so row-level security does not apply to it);
--   agentlog_projector      writes the projections (the projector SETs ROLE to it);
--   agentlog_auditor        reads every row, writes nothing;
--   agentlog_tenant         the group of tenant login roles: each is mapped to one tenant in
--                           tenant_roles (`agentlog db role create`) and reads only that
--                           tenant's rows (the views below), whatever it asks.
--
-- Roles are cluster-wide; the mapping and the policies belong to this schema.

DO $$
BEGIN
    CREATE ROLE agentlog_auditor NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- cluster-wide role, created by an earlier schema's migration
END
$$;
DO $$
BEGIN
    CREATE ROLE agentlog_tenant NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- Which tenant each tenant login role reads. Only the owner reads or writes it.
CREATE TABLE tenant_roles (
    role_name  text        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The tenant a role is mapped to (NULL: none), told only to a login that is that role (or a
-- member of it). SECURITY DEFINER, so that a tenant role need not read the mapping, which
-- names every tenant. The views pass current_user.
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION %I.tenant_of(role_name text) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER'
        ' SET search_path = %I AS $f$ SELECT tenant_id FROM tenant_roles'
        ' WHERE role_name = $1 AND pg_has_role(session_user, $1, ''MEMBER'') $f$',
        current_schema(), current_schema());
    -- USAGE lets a tenant login call tenant_of (its views do); it may SELECT no table here.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO agentlog_auditor, agentlog_tenant', current_schema());
END
$$;
REVOKE ALL ON FUNCTION tenant_of(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_of(text) TO agentlog_tenant;

-- The audit log's tenant: the one the record names (a decision names its tree's tenant; a
-- raw input the tenant its publisher claimed, so forged inputs land in the forger's scope).
ALTER TABLE audit_log ADD COLUMN tenant_id text GENERATED ALWAYS AS (value->'meta'->>'tenant_id') STORED;
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, kafka_ts);

GRANT SELECT ON projector_positions, audit_log, agents, agent_events, denied_spawns, handoffs, schema_migrations
    TO agentlog_auditor;

-- A tenant login reads nothing of this schema directly. It reads the tenant schema beside it
-- (<schema>_tenant): one view per projection table, with the same name and columns, showing
-- the rows of the login's tenant only; the query commands switch to it for tenant logins.
-- (Row-level security on the tables themselves would refuse the projector's COPY: PostgreSQL
-- does not COPY into a table whose policies apply to the writer, and only a superuser may
-- exempt a role.) A tree is its root's tenant's: history rows follow their root's row.
DO $$
DECLARE
    base   text := current_schema();
    tenant text := current_schema() || '_tenant';
BEGIN
    IF length(tenant) > 63 THEN
        RAISE EXCEPTION 'schema name % is too long for its tenant schema % (at most 56 characters)', base, tenant;
    END IF;
    EXECUTE format('CREATE SCHEMA %I', tenant);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO agentlog_tenant', tenant);
    EXECUTE format(
        'CREATE VIEW %I.agents WITH (security_barrier) AS SELECT * FROM %I.agents'
        ' WHERE tenant_id = %I.tenant_of(current_user)', tenant, base, base);
    EXECUTE format(
        'CREATE VIEW %I.agent_events WITH (security_barrier) AS SELECT e.* FROM %I.agent_events e'
        ' WHERE EXISTS (SELECT FROM %I.agents r WHERE r.agent_id = e.root_id AND r.tenant_id = %I.tenant_of(current_user))',
        tenant, base, base, base);
    EXECUTE format(
        'CREATE VIEW %I.denied_spawns WITH (security_barrier) AS SELECT * FROM %I.denied_spawns'
        ' WHERE tenant_id = %I.tenant_of(current_user)', tenant, base, base);
    EXECUTE format(
        'CREATE VIEW %I.handoffs WITH (security_barrier) AS SELECT h.* FROM %I.handoffs h'
        ' WHERE EXISTS (SELECT FROM %I.agents r WHERE r.agent_id = h.root_id AND r.tenant_id = %I.tenant_of(current_user))',
        tenant, base, base, base);
    EXECUTE format(
        'CREATE VIEW %I.audit_log WITH (security_barrier) AS SELECT * FROM %I.audit_log'
        ' WHERE tenant_id = %I.tenant_of(current_user)', tenant, base, base);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO agentlog_tenant', tenant);
END
$$;
