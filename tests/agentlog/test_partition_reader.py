"""The one read-to-end loop: where "the end" is, open and aborted transactions, following on, and errors."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Producer as KafkaProducer

from agentlog import kafka_config
from agentlog.partition_reader import BEGINNING, END, PartitionReader, PartitionReadError
from agentlog.settings import Settings
from agentlog.topics import AGENT_LIFECYCLE

pytestmark = pytest.mark.timeout(120)


def _topic(settings: Settings) -> str:
    return settings.topic_prefix + AGENT_LIFECYCLE.name


def _plain(settings: Settings, values: list[bytes], partition: int = 0) -> None:
    producer = KafkaProducer(kafka_config.base(settings))
    for value in values:
        producer.produce(_topic(settings), value, partition=partition)
    assert producer.flush(30) == 0


def _transactional(settings: Settings) -> KafkaProducer:
    producer = KafkaProducer({**kafka_config.base(settings), "transactional.id": f"reader-test-{uuid.uuid4()}"})
    producer.init_transactions(30)
    return producer


def _read(settings: Settings, *, stable: bool = False, start: int = BEGINNING) -> list[bytes | None]:
    with PartitionReader(settings) as reader:
        reader.assign([(_topic(settings), 0, start)])
        return [r.value for r in reader.read_to_end(stable=stable)]


def test_reads_every_partition_to_its_end_in_offset_order(settings: Settings) -> None:
    _plain(settings, [b"a0", b"a1", b"a2"], partition=0)
    _plain(settings, [b"b0"], partition=1)
    with PartitionReader(settings) as reader:
        reader.assign([(_topic(settings), p, BEGINNING) for p in range(AGENT_LIFECYCLE.partitions or 3)])
        records = list(reader.read_to_end())
    by_partition = {p: [r.value for r in records if r.partition == p] for p in (0, 1)}
    assert by_partition == {0: [b"a0", b"a1", b"a2"], 1: [b"b0"]}
    assert [r.offset for r in records if r.partition == 0] == [0, 1, 2]
    assert all(str(r) == f"{_topic(settings)}[{r.partition}]@{r.offset}" for r in records)


def test_the_end_is_where_the_partition_ended_when_reading_started_and_follow_goes_on(settings: Settings) -> None:
    _plain(settings, [b"before-0", b"before-1"])
    with PartitionReader(settings) as reader:
        reader.assign([(_topic(settings), 0, BEGINNING)])
        read = []
        for record in reader.read_to_end():
            read.append(record.value)
            if len(read) == 1:
                _plain(settings, [b"after"])  # appended while reading: left for the next read
        assert read == [b"before-0", b"before-1"]
        deadline = time.monotonic() + 30
        followed: list[bytes | None] = []
        while not followed and time.monotonic() < deadline:
            followed = [r.value for r in reader.follow(timeout_s=0.5)]
        assert followed == [b"after"]
        assert reader.positions() == {(_topic(settings), 0): 3}


def test_a_start_at_the_end_or_past_it_reads_nothing(settings: Settings) -> None:
    _plain(settings, [b"x", b"y"])
    assert _read(settings, start=END) == []
    assert _read(settings, start=2) == []
    assert _read(settings, start=1) == [b"y"]
    assert _read(settings) == [b"x", b"y"]


def test_aborted_records_are_never_read(settings: Settings) -> None:
    producer = _transactional(settings)
    producer.begin_transaction()
    producer.produce(_topic(settings), b"aborted", partition=0)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(_topic(settings), b"committed", partition=0)
    producer.commit_transaction(30)
    assert _read(settings) == [b"committed"]
    assert _read(settings, stable=True) == [b"committed"]


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_an_open_transaction_ends_a_read_now_but_a_stable_read_waits_for_it(settings: Settings, outcome: str) -> None:
    _plain(settings, [b"settled"])
    producer = _transactional(settings)
    producer.begin_transaction()
    producer.produce(_topic(settings), b"pending", partition=0)
    assert producer.flush(30) == 0
    assert _read(settings) == [b"settled"]  # committed reads stop at the open transaction

    settled = threading.Event()

    def settle_soon() -> None:
        time.sleep(1.0)
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
        settled.set()

    threading.Thread(target=settle_soon, daemon=True).start()
    expected = [b"settled", b"pending"] if outcome == "commit" else [b"settled"]
    assert _read(settings, stable=True) == expected
    assert settled.is_set()


def test_a_partition_that_cannot_be_read_is_an_error_naming_it(settings: Settings) -> None:
    missing = f"{settings.topic_prefix}no-such-topic"
    with PartitionReader(settings, patience_s=2.0) as reader:
        reader.assign([(missing, 0, BEGINNING)])
        with pytest.raises(PartitionReadError, match=rf"{missing}\[0\]"):
            list(reader.read_to_end())
