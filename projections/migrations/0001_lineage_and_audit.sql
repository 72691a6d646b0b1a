-- Lineage and the hash-chained audit log.
--
-- Runs with search_path set to the target schema (``agentlog db migrate --schema``), so
-- every name below is created in that schema. Kafka is the source of truth: every row
-- here can be thrown away and rebuilt by replaying the topics.

-- Where the projector is: the next offset to project of every (topic, partition), and the
-- hash of the last audit row of that partition (the head of its chain). Written in the
-- same transaction as the rows, so rows and positions never disagree.
CREATE TABLE projector_positions (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    chain_head  bytea       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- One row per record of every topic, undecodable ones included. Append-only: the
-- projector role may INSERT and SELECT, never UPDATE or DELETE.
-- hash = sha256(prev_hash || topic || partition || offset || timestamp || key || value),
-- see projections/audit_chain.py.
CREATE TABLE audit_log (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    timestamp_ms bigint      NOT NULL,          -- Kafka record timestamp (-1 when absent), as hashed
    kafka_ts     timestamptz,                   -- the same, for time-range queries
    key          bytea,
    record_name  text,                          -- Avro full name; NULL when undecodable
    value        jsonb,                         -- decoded value; NULL when undecodable
    raw_value    bytea,                         -- the exact bytes that were hashed
    error        text,                          -- why the record was undecodable or misplaced
    headers      jsonb,
    root_id      text,
    -- every agent the record names, in any role; computed by the server from the value
    agent_ids    text[]      GENERATED ALWAYS AS (array_remove(ARRAY[
                     value->>'agent_id', value->>'child_agent_id', value->>'parent_agent_id',
                     value->>'from_agent_id', value->>'to_agent_id', value->>'ended_by_agent_id'], NULL)) STORED,
    event_id     uuid,
    occurred_at  timestamptz,
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX audit_log_root ON audit_log (root_id, kafka_ts);
CREATE INDEX audit_log_agents ON audit_log USING gin (agent_ids);
CREATE INDEX audit_log_time ON audit_log USING brin (kafka_ts);

-- Agents, current state. Identity comes from the approval (SpawnApproved, RootAdmitted) or
-- the registration (RootAgentRegistered); lifecycle events may arrive first and create a
-- row without identity. Every column is a function of the *set* of events applied, never
-- of the order in which different topics were read (see projections/lineage_events.py).
CREATE TABLE agents (
    agent_id            text PRIMARY KEY,
    root_id             text        NOT NULL,
    tenant_id           text,
    parent_id           text,
    depth               integer,
    path                text[],                 -- ids from the root down to this agent
    config              text,
    token_budget        bigint,                 -- granted at approval
    spawn_budget        integer,
    deadline            timestamptz,
    policy_version      integer,
    request_id          uuid,
    created_at          timestamptz,            -- earliest identity event (event time)
    ident_rank          smallint    NOT NULL DEFAULT 0,  -- 2 decision, 1 registration, 0 none yet
    ident_at            timestamptz,
    ident_topic         text COLLATE "C",
    ident_partition     integer,
    ident_offset        bigint,
    status              text,
    status_rank         smallint,               -- 0 registered, 1 approved, 2 running, 3 ended
    status_at           timestamptz,
    status_topic        text COLLATE "C",
    status_partition    integer,
    status_offset       bigint,
    started_at          timestamptz,
    tokens_consumed     bigint      NOT NULL DEFAULT 0,  -- sum of TokensConsumed
    tokens_reported     bigint      NOT NULL DEFAULT 0,  -- largest tokens_used of a completion/failure
    tokens_returned     bigint      NOT NULL DEFAULT 0,
    tokens_topped_up    bigint      NOT NULL DEFAULT 0,
    budget_exhausted_at timestamptz
);
CREATE INDEX agents_root ON agents (root_id);
CREATE INDEX agents_parent ON agents (parent_id);
CREATE INDEX agents_path ON agents USING gin (path);

-- Every event that touched an agent, with its effect: the history that answers "as of".
CREATE TABLE agent_events (
    topic            text COLLATE "C" NOT NULL,
    partition        integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    agent_id         text        NOT NULL,
    root_id          text        NOT NULL,
    record_name      text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    status           text,
    status_rank      smallint,
    tokens_consumed  bigint      NOT NULL DEFAULT 0,
    tokens_reported  bigint      NOT NULL DEFAULT 0,
    tokens_returned  bigint      NOT NULL DEFAULT 0,
    tokens_topped_up bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX agent_events_agent ON agent_events (agent_id, occurred_at);

-- Denied spawns (and rejected roots) are nodes of their own under the agent that asked.
CREATE TABLE denied_spawns (
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    request_id      uuid,
    root_id         text        NOT NULL,
    tenant_id       text        NOT NULL,
    parent_agent_id text,                       -- NULL for a rejected root
    agent_id        text,                       -- the rejected root's id
    child_config    text        NOT NULL,
    reason          text        NOT NULL,
    checks          jsonb       NOT NULL,
    policy_version  integer     NOT NULL,
    message         text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX denied_spawns_root ON denied_spawns (root_id, occurred_at);
CREATE INDEX denied_spawns_parent ON denied_spawns (parent_agent_id);

-- Handoffs are edges between agents.
CREATE TABLE handoffs (
    topic         text        NOT NULL,
    partition     integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    message_id    uuid        NOT NULL,
    root_id       text        NOT NULL,
    from_agent_id text        NOT NULL,
    to_agent_id   text        NOT NULL,
    priority      text        NOT NULL,
    title         text        NOT NULL,
    occurred_at   timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX handoffs_root ON handoffs (root_id, occurred_at);
CREATE INDEX handoffs_from ON handoffs (from_agent_id);
CREATE INDEX handoffs_to ON handoffs (to_agent_id);

-- The projector's role: no LOGIN; the projector connects as the owner and SETs ROLE.
-- It may append to the audit log but never change or remove a row of it.
DO $$
BEGIN
    CREATE ROLE agentlog_projector NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- cluster-wide role, created by an earlier schema's migration
END
$$;
DO $$
BEGIN
    EXECUTE format('GRANT agentlog_projector TO %I', current_user);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO agentlog_projector', current_schema());
END
$$;
REVOKE ALL ON audit_log FROM agentlog_projector;
GRANT SELECT, INSERT ON audit_log TO agentlog_projector;
GRANT SELECT, INSERT, UPDATE ON projector_positions, agents TO agentlog_projector;
GRANT SELECT, INSERT ON agent_events, denied_spawns, handoffs TO agentlog_projector;
