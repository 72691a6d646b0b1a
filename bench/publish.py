"""Publish throughput: the SDK (model → Avro → broker, acks=all) next to a raw producer.

Both send the same number of records of the same size with the same keys to the same
broker in the same run; the raw producer sends bytes encoded in advance, so the ratio is
what the SDK's validation-free encode, keying and delivery tracking cost. Also measures
encode/decode rates of the serde on one core.

    python bench/publish.py [--events 100000] [--record SpawnRequested]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import deque
from collections.abc import Callable

from confluent_kafka import Producer as KafkaProducer

from agentlog import kafka_config
from agentlog.events import EVENT_TYPES, Event
from agentlog.producer import Producer
from agentlog.samples import sample_record
from agentlog.schema_store import default_store
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.topic_admin import delete_topics, ensure_topics
from agentlog.topics import CATALOGUE, topic_of

SERDE_RECORDS = ("SpawnRequested", "SpawnApproved", "TokensConsumed", "AgentCompleted")


def make_events(record: str, count: int, trees: int = 1000) -> list[Event]:
    """``count`` events of one record type spread over ``trees`` root ids."""
    store = default_store()
    model = EVENT_TYPES[store.get(record).full_name]
    template = sample_record(store.get(record))
    events = []
    for i in range(count):
        value = dict(template)
        value["meta"] = {**template["meta"], "event_id": uuid.uuid4(), "root_id": f"root-{i % trees}"}
        events.append(model.model_validate(value))
    return events


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s"


def timed(action: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    action()
    return clock() - start


def bench_sdk(settings: Settings, events: list[Event]) -> float:
    with Producer(settings) as producer:
        return timed(lambda: producer.publish_many(events))


def bench_raw(settings: Settings, events: list[Event]) -> float:
    serde = Serde()
    topic = settings.topic_prefix + topic_of(type(events[0])).name
    payloads = [(e.meta.root_id.encode(), serde.encode(e, topic)) for e in events]
    producer = KafkaProducer(kafka_config.producer(settings))
    failures: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    def send_all() -> None:
        for key, value in payloads:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)

    seconds = timed(send_all)
    if failures:
        raise SystemExit(f"raw producer: {len(failures)} deliveries failed")
    return seconds


def bench_serde(count: int) -> None:
    store = default_store()
    serde = Serde(store)
    print(f"\nserde on one core ({count:,} records each, CPU time: other processes on the machine do not count)")
    print("(Avro ↔ plain dicts is the serde itself; the model columns add pydantic's dump and validation)")
    columns = ("dict→Avro", "Avro→dict", "model→Avro", "Avro→model")
    print(f"{'record':<18}{'bytes':>7}" + "".join(f"{c:>16}" for c in columns))
    for record in SERDE_RECORDS:
        events = make_events(record, count)
        name = events[0].avro_name
        values = [e.model_dump() for e in events]
        encoded: list[bytes] = []
        cpu = time.process_time
        enc = timed(lambda: encoded.extend(serde.encode_value(name, v, "t") for v in values), cpu)  # noqa: B023
        # Results are dropped as they come (deque of length 0), as a consumer does: keeping
        # 50,000 decoded records alive makes the garbage collector the thing measured.
        dec = timed(lambda: deque((serde.decode_value(b) for b in encoded), maxlen=0), cpu)  # noqa: B023
        enc_model = timed(lambda: deque((serde.encode(e, "t") for e in events), maxlen=0), cpu)  # noqa: B023
        dec_model = timed(lambda: deque((serde.decode(b) for b in encoded), maxlen=0), cpu)  # noqa: B023
        rates = "".join(f"{rate(count, seconds):>16}" for seconds in (enc, dec, enc_model, dec_model))
        print(f"{name.rsplit('.', 1)[-1]:<18}{len(encoded[0]):>7}{rates}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--record", default="SpawnRequested")
    parser.add_argument("--rounds", type=int, default=2, help="alternating SDK/raw rounds; best of each is reported")
    args = parser.parse_args()
    settings = Settings(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    ensure_topics(settings)
    try:
        events = make_events(args.record, args.events)
        size = len(Serde().encode(events[0], "t"))
        print(f"publish: {args.events:,} {args.record} events ({size} bytes each) to {settings.bootstrap_servers}")
        sdk_times, raw_times = [], []
        for _ in range(args.rounds):
            raw_times.append(bench_raw(settings, events))
            sdk_times.append(bench_sdk(settings, events))
        sdk, raw = min(sdk_times), min(raw_times)
        print(f"  raw confluent-kafka producer (pre-encoded) {rate(args.events, raw)}")
        print(f"  agentlog SDK (model → Avro → broker)      {rate(args.events, sdk)}")
        print(f"  ratio SDK / raw                           {raw / sdk:>12.0%}   (goal ≥ 50%)")
        bench_serde(min(args.events, 50_000))
    finally:
        delete_topics(settings, [settings.topic_prefix + spec.name for spec in CATALOGUE])


if __name__ == "__main__":
    main()
