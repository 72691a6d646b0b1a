-- The consultation bus: messages as published (claims), the bus's answer to each and what became
-- of it (facts), and who each message was delivered to and acknowledged by
-- (agentlog.projections.bus_events says what each record does to these tables). Claims and facts
-- are on two topics the projector reads in no fixed interleaving, so each table is written from
-- one side (or merges commutatively), and the views below join them when read.

-- Messages as published on agentlog.messages (a rejected or forged one too), acknowledgements aside.
CREATE TABLE message_posts (
    topic         text COLLATE "C" NOT NULL,
    partition     integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    event_id      uuid        NOT NULL,
    root_id       text        NOT NULL,
    tenant_id     text        NOT NULL,
    message_id    uuid        NOT NULL,
    kind          text        NOT NULL,
    from_agent_id text        NOT NULL,
    to_agent_id   text,
    in_reply_to   uuid,
    priority      text        NOT NULL,
    summary       text        NOT NULL,
    body          text        NOT NULL,
    details       jsonb       NOT NULL,
    deadline      timestamptz,
    sent_at       timestamptz NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX message_posts_event ON message_posts (root_id, event_id);

-- One row per answer of the bus (MessageAccepted or MessageRejected; causation_id names the post),
-- updated by the later facts about it: replies, the decision, escalations, the expiry.
CREATE TABLE message_states (
    topic            text COLLATE "C" NOT NULL,
    partition        integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    post_event_id    uuid,
    root_id          text        NOT NULL,
    tenant_id        text        NOT NULL,
    message_id       uuid        NOT NULL,
    kind             text        NOT NULL,
    from_agent_id    text        NOT NULL,
    recipients       text[]      NOT NULL,
    broadcast        boolean     NOT NULL,
    priority         text,
    in_reply_to      uuid,
    deadline         timestamptz,
    accepted         boolean     NOT NULL,
    reason           text,
    reason_message   text        NOT NULL,
    policy_version   integer     NOT NULL,
    answered_at      timestamptz NOT NULL,
    state            text        NOT NULL,
    replies          integer     NOT NULL,
    last_reply_at    timestamptz,
    escalation_level integer     NOT NULL,
    recipient        text,
    current_deadline timestamptz,
    decided_at       timestamptz,
    decided_by       text,
    decision_id      uuid,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL,
    updated_offset   bigint      NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX message_states_message ON message_states (root_id, message_id, kind, "offset") WHERE accepted;
CREATE INDEX message_states_post ON message_states (root_id, post_event_id);
CREATE INDEX message_states_root ON message_states (root_id, answered_at);

-- Per message and agent: addressed by the bus (a recipient, or an escalated question's decider),
-- and the first acknowledgement an inbox of the same tenant published.
CREATE TABLE message_deliveries (
    root_id         text        NOT NULL,
    message_id      uuid        NOT NULL,
    agent_id        text        NOT NULL,
    tenant_id       text        NOT NULL,
    addressed       boolean     NOT NULL,
    addressed_at    timestamptz,
    acknowledged_at timestamptz,
    PRIMARY KEY (root_id, message_id, agent_id, tenant_id)
);
CREATE INDEX message_deliveries_agent ON message_deliveries (root_id, agent_id) WHERE addressed;

-- Every message: answered ones with the post their answer names (on its partition, in its tree and
-- tenant, the first of that event id: the one the bus read), and the posts not answered yet
-- ('pending'). An accepted message every recipient acknowledged reads 'acknowledged'.
CREATE VIEW messages AS
SELECT s.root_id, s.tenant_id, s.message_id, s.kind, s.from_agent_id, p.to_agent_id, s.recipients, s.broadcast,
    COALESCE(s.priority, p.priority) AS priority, COALESCE(p.summary, '') AS summary, COALESCE(p.body, '') AS body,
    COALESCE(p.details, '{}') AS details, COALESCE(s.in_reply_to, p.in_reply_to) AS in_reply_to, p.sent_at,
    s.answered_at, s.deadline, s.accepted,
    CASE WHEN s.state = 'accepted' AND cardinality(s.recipients) > 0 AND s.recipients <@ d.acknowledged_by
        THEN 'acknowledged' ELSE s.state END AS state,
    s.reason, s.reason_message, s.replies, s.last_reply_at, s.escalation_level, s.recipient, s.current_deadline,
    s.decided_at, s.decided_by, s.decision_id, s.closed_at, d.acknowledged_by, s.policy_version,
    s.post_event_id AS event_id, s.topic, s.partition, s."offset"
FROM message_states s
LEFT JOIN LATERAL (
    SELECT * FROM message_posts p WHERE p.root_id = s.root_id AND p.event_id = s.post_event_id
        AND p.partition = s.partition AND p.tenant_id = s.tenant_id
    ORDER BY p."offset" LIMIT 1
) p ON true
CROSS JOIN LATERAL (
    SELECT COALESCE(array_agg(d.agent_id ORDER BY d.agent_id COLLATE "C"), '{}') AS acknowledged_by
    FROM message_deliveries d WHERE d.root_id = s.root_id AND d.message_id = s.message_id
        AND d.tenant_id = s.tenant_id AND d.acknowledged_at IS NOT NULL AND (d.addressed OR s.broadcast)
) d
UNION ALL
SELECT p.root_id, p.tenant_id, p.message_id, p.kind, p.from_agent_id, p.to_agent_id, '{}', false, p.priority,
    p.summary, p.body, p.details, p.in_reply_to, p.sent_at, NULL, p.deadline, false, 'pending', NULL, '', 0, NULL, 0,
    p.to_agent_id, p.deadline, NULL, NULL, NULL, NULL, '{}', 0, p.event_id, p.topic, p.partition, p."offset"
FROM message_posts p
WHERE NOT EXISTS (
    SELECT FROM message_states s WHERE s.root_id = p.root_id AND s.post_event_id = p.event_id
        AND s.partition = p.partition
);

-- Accepted questions: whom they wait for now, how often they were escalated, and how they ended.
CREATE VIEW questions AS
SELECT m.root_id, m.tenant_id, m.message_id AS question_id, m.from_agent_id AS asker, m.summary AS question,
    ARRAY(SELECT jsonb_array_elements_text(COALESCE(m.details->'options', '[]'))) AS options, m.priority,
    m.recipients[1] AS first_recipient, m.recipient, m.escalation_level, m.deadline AS first_decide_by,
    m.current_deadline AS decide_by, m.answered_at AS asked_at,
    CASE WHEN m.state IN ('decided', 'expired') THEN m.state ELSE 'open' END AS status,
    m.decided_at, m.decided_by, m.decision_id, m.closed_at, m.decided_at - m.answered_at AS time_to_decide,
    m.partition, m."offset"
FROM messages m
WHERE m.kind = 'QUESTION' AND m.accepted;

-- The decision log: every accepted decision with its question (the newest accepted question of that
-- id before it, in its tree and tenant). Refused decisions are messages with a reason.
CREATE VIEW decisions AS
SELECT d.root_id, d.tenant_id, d.message_id AS decision_id, d.in_reply_to AS question_id, q.question, q.asker,
    COALESCE(q.options, '{}') AS options, d.from_agent_id AS decided_by, d.summary AS choice, d.body AS rationale,
    COALESCE(d.details->>'impact', '') AS impact, COALESCE(d.details->'impact_details', '{}') AS impact_details,
    q.first_recipient, q.escalation_level, q.asked_at, d.answered_at AS decided_at,
    d.answered_at - q.asked_at AS time_to_decide, d.priority, d.policy_version, d.partition, d."offset"
FROM messages d
LEFT JOIN LATERAL (
    SELECT * FROM questions q WHERE q.root_id = d.root_id AND q.question_id = d.in_reply_to
        AND q.tenant_id = d.tenant_id AND q.partition = d.partition AND q."offset" < d."offset"
    ORDER BY q."offset" DESC LIMIT 1
) q ON true
WHERE d.kind = 'DECISION' AND d.accepted;

GRANT SELECT, INSERT ON message_posts TO agentlog_projector;
GRANT SELECT, INSERT, UPDATE ON message_states, message_deliveries TO agentlog_projector;
GRANT SELECT ON message_posts, message_states, message_deliveries, messages, questions, decisions
    TO agentlog_auditor;

-- Tenant views (as in 0003): a tenant login sees its tenant's rows only.
DO $$
DECLARE
    base   text := current_schema();
    tenant text := current_schema() || '_tenant';
    t      text;
BEGIN
    FOREACH t IN ARRAY ARRAY['message_posts', 'message_states', 'message_deliveries', 'messages', 'questions',
                             'decisions'] LOOP
        EXECUTE format(
            'CREATE VIEW %I.%I WITH (security_barrier) AS SELECT * FROM %I.%I'
            ' WHERE tenant_id = %I.tenant_of(current_user)', tenant, t, base, t, base);
        EXECUTE format('GRANT SELECT ON %I.%I TO agentlog_tenant', tenant, t);
    END LOOP;
END
$$;
