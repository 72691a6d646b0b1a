-- Missions: the mission processor's facts and the commands that created them
-- (agentlog.projections.mission_events says what each record does to these tables).

-- One row per mission: its newest fact's state (all facts of a tree are on one partition,
-- so the highest offset is the newest), the first start, when it finished. created_offset is
-- its newest creation: a root id used again after the gate forgot its tree creates anew, and
-- the history before it is the other tree's.
CREATE TABLE missions (
    root_id        text        NOT NULL,
    mission_id     text        NOT NULL,
    tenant_id      text        NOT NULL,
    state          text        NOT NULL,
    attempt        integer     NOT NULL,
    agent_id       text,
    result_summary text        NOT NULL,
    quality_score  double precision,
    policy_version integer     NOT NULL,
    spec_event_id  uuid,
    created_at     timestamptz,
    created_offset bigint,
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL,
    topic          text COLLATE "C" NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    PRIMARY KEY (root_id, mission_id)
);
CREATE INDEX missions_state ON missions (root_id, state);

-- Every transition, automatic ones included, in the order decided.
CREATE TABLE mission_transitions (
    topic          text COLLATE "C" NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    causation_id   uuid,
    root_id        text        NOT NULL,
    tenant_id      text        NOT NULL,
    mission_id     text        NOT NULL,
    from_state     text        NOT NULL,
    to_state       text        NOT NULL,
    attempt        integer     NOT NULL,
    agent_id       text,
    reason         text        NOT NULL,
    result_summary text        NOT NULL,
    quality_score  double precision,
    policy_version integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX mission_transitions_mission ON mission_transitions (root_id, mission_id, "offset");
CREATE INDEX mission_transitions_agent ON mission_transitions (agent_id) WHERE agent_id IS NOT NULL;

-- Accepted dependencies (a dependency is never removed: it is satisfied, or blocks).
CREATE TABLE mission_dependencies (
    topic          text COLLATE "C" NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    root_id        text        NOT NULL,
    tenant_id      text        NOT NULL,
    mission_id     text        NOT NULL,
    depends_on     text        NOT NULL,
    kind           text        NOT NULL,
    policy_version integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX mission_dependencies_mission ON mission_dependencies (root_id, mission_id);
CREATE INDEX mission_dependencies_on ON mission_dependencies (root_id, depends_on);

-- Rejected commands: transitions and dependencies, with the code, the sentence and a cycle.
CREATE TABLE mission_rejections (
    topic          text COLLATE "C" NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    causation_id   uuid,
    root_id        text        NOT NULL,
    tenant_id      text        NOT NULL,
    mission_id     text        NOT NULL,
    record_name    text        NOT NULL,
    from_state     text,
    to_state       text,
    depends_on     text,
    kind           text,
    reason_code    text        NOT NULL,
    reason         text        NOT NULL,
    cycle          jsonb       NOT NULL,
    policy_version integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX mission_rejections_mission ON mission_rejections (root_id, mission_id);

-- Creation commands as published (claims: a rejected one is here too). A mission's row joins
-- the one its accepting fact names (missions.spec_event_id), in its tree and tenant.
CREATE TABLE mission_specs (
    topic             text COLLATE "C" NOT NULL,
    partition         integer     NOT NULL,
    "offset"          bigint      NOT NULL,
    event_id          uuid        NOT NULL,
    root_id           text        NOT NULL,
    tenant_id         text        NOT NULL,
    mission_id        text        NOT NULL,
    parent_mission_id text,
    title             text        NOT NULL,
    description       text        NOT NULL,
    priority          text        NOT NULL,
    deadline          timestamptz,
    owner_agent_id    text,
    max_attempts      integer     NOT NULL,
    occurred_at       timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX mission_specs_event ON mission_specs (event_id);

GRANT SELECT, INSERT, UPDATE ON missions TO agentlog_projector;
GRANT SELECT, INSERT ON mission_transitions, mission_dependencies, mission_rejections, mission_specs
    TO agentlog_projector;
GRANT SELECT ON missions, mission_transitions, mission_dependencies, mission_rejections, mission_specs
    TO agentlog_auditor;

-- Tenant views (as in 0003): a tenant login sees its tenant's rows only.
DO $$
DECLARE
    base   text := current_schema();
    tenant text := current_schema() || '_tenant';
    t      text;
BEGIN
    FOREACH t IN ARRAY ARRAY['missions', 'mission_transitions', 'mission_dependencies', 'mission_rejections',
                             'mission_specs'] LOOP
        EXECUTE format(
            'CREATE VIEW %I.%I WITH (security_barrier) AS SELECT * FROM %I.%I'
            ' WHERE tenant_id = %I.tenant_of(current_user)', tenant, t, base, t, base);
        EXECUTE format('GRANT SELECT ON %I.%I TO agentlog_tenant', tenant, t);
    END LOOP;
END
$$;
