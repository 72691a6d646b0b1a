-- agent_events without a primary key: it cost about as much as the rest of the table's
-- writes (3-4 us of server CPU per row, measured with binary COPY) and guarded nothing.
-- Each record yields at most one agent_events row, written in the same transaction as the
-- record's audit_log row, whose primary key (topic, partition, "offset") already aborts a
-- batch that would project a record twice. Lookups go through agent_events_agent.
ALTER TABLE agent_events DROP CONSTRAINT agent_events_pkey;
