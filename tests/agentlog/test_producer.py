"""The producer SDK against the real broker: every record type, keys, partitions, failures."""

from __future__ import annotations

import pytest

from agentlog.errors import DeliveryError
from agentlog.events import EVENT_TYPES, Event, Meta, TokensConsumed
from agentlog.producer import Producer
from agentlog.samples import sample_record
from agentlog.schema_store import default_store
from agentlog.settings import Settings
from agentlog.tail import TailOptions, tail
from agentlog.topic_admin import tree_partition_count
from agentlog.topics import AGENT_LIFECYCLE, DEPLOYED, key_of, topic_of


def _samples() -> list[Event]:
    store = default_store()
    return [
        EVENT_TYPES[name].model_validate(sample_record(store.get(name), seed=i))
        for i, name in enumerate(sorted(EVENT_TYPES))
    ]


def test_every_record_type_round_trips_through_the_broker(settings: Settings) -> None:
    """Each record type is published to its topic, keyed, and read back equal."""
    events = _samples()
    with Producer(settings) as producer:
        deliveries = producer.publish_many(events)
    assert [d.record for d in deliveries] == [e.avro_name for e in events]
    topics = [settings.topic_prefix + spec.name for spec in DEPLOYED]
    read = list(tail(settings, TailOptions(topics=topics, from_beginning=True)))
    by_id = {str(r.value["meta"]["event_id"]): r for r in read if r.value}
    assert len(by_id) == len(events)
    for event in events:
        record = by_id[str(event.meta.event_id)]
        assert record.topic == settings.topic_prefix + topic_of(type(event)).name
        assert record.key == key_of(event)
        assert EVENT_TYPES[record.record or ""].model_validate(record.value) == event


def test_one_tree_lands_in_one_partition_number_on_every_topic(settings: Settings) -> None:
    """Events of one root share a partition number across co-partitioned topics (Java's murmur2)."""
    meta = Meta(tenant_id="t", root_id="tree-42", producer="test")
    usage = TokensConsumed(meta=meta, agent_id="a", tokens=1)
    root = EVENT_TYPES["agentlog.spawn.RootAgentRegistered"].model_validate(
        {"meta": meta, "agent_id": "tree-42", "config": "c", "token_budget": 1, "spawn_budget": 1}
    )
    with Producer(settings) as producer:
        deliveries = producer.publish_many([usage, root, usage.model_copy(update={"meta": meta.model_copy()})])
    assert {d.partition for d in deliveries} == {deliveries[0].partition}
    # The Java client's murmur2 partition of "tree-42" over the topics' count (as faust/aiokafka compute it too).
    from aiokafka.partitioner import DefaultPartitioner

    count = tree_partition_count(settings)
    expected = DefaultPartitioner()(b"tree-42", list(range(count)), list(range(count)))
    assert deliveries[0].partition == expected


def test_delivery_failure_raises(settings: Settings) -> None:
    """A record the broker refuses (its topic does not exist) raises DeliveryError, never passes silently."""
    meta = Meta(tenant_id="t", root_id="r", producer="test")
    producer = Producer(settings.model_copy(update={"topic_prefix": "missing."}), config={"message.timeout.ms": 3000})
    producer.send(TokensConsumed(meta=meta, agent_id="a", tokens=1))
    with pytest.raises(DeliveryError, match="not delivered"):
        producer.flush(timeout=10)


def test_aborted_transaction_is_invisible_to_read_committed(settings: Settings) -> None:
    """An exception inside transaction() aborts: a read_committed reader sees nothing of the batch."""
    meta = Meta(tenant_id="t", root_id="r", producer="test")
    producer = Producer(settings, transactional_id=f"{settings.topic_prefix}tx")
    with pytest.raises(RuntimeError), producer.transaction():
        producer.send(TokensConsumed(meta=meta, agent_id="a", tokens=1))
        producer._kafka.flush(10)  # the record reaches the broker before the abort
        raise RuntimeError("boom")
    with producer.transaction():
        producer.send(TokensConsumed(meta=meta.model_copy(update={"producer": "second"}), agent_id="b", tokens=2))
    read = list(tail(settings, TailOptions(topics=[settings.topic_prefix + AGENT_LIFECYCLE.name], from_beginning=True)))
    assert [r.value["agent_id"] for r in read if r.value] == ["b"]
