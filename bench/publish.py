"""Publish throughput: the SDK (model → Avro → broker, acks=all) next to a raw producer.

Both send the same number of records of the same size with the same keys to the same
broker in the same rounds, each round alternating the two, each run in a fresh child
process (``--job``) so that one run's heap and garbage do not weigh on the next. The
child times only the sending and reports its wall time and CPU time:

- **raw** (the ceiling): a plain confluent-kafka producer sends bytes encoded before the
  clock starts (kept in a frozen list, outside the garbage collector's reach);
- **sdk**: builds each event as an application does — one model at a time, right before
  sending it — and sends it with ``Producer.send``;
- **signed**: the SDK with a signing key (``AGENTLOG_SIGNING_KEY``): each flushed batch
  of up to 128 records signed once, a Merkle proof per record (:mod:`agentlog.signing`);
- **build**: builds the same models and drops them, without sending: what the
  application itself pays, so that the SDK's own cost is *sdk - build*.

Each child connects and sends one record before its clock starts. Both senders flush
every ``--flush-every`` records and at the end, as a streaming application does, so that
neither keeps the whole run in memory. The serde rates at
the end are CPU time on one core, in this process.

    python bench/publish.py [--events 100000] [--record SpawnRequested] [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Producer as KafkaProducer

from agentlog import kafka_config
from agentlog.events import EVENT_TYPES, Event
from agentlog.producer import Producer
from agentlog.samples import sample_record
from agentlog.schema_store import default_store
from agentlog.serde import Serde
from agentlog.settings import Settings
from agentlog.signing import SigningKey
from agentlog.topics import topic_of

sys.path.append(str(Path(__file__).resolve().parent))
import measure

SERDE_RECORDS = ("SpawnRequested", "SpawnApproved", "TokensConsumed", "AgentCompleted")


def build_events(record: str, count: int, trees: int = 1000) -> Iterator[Event]:
    """``count`` events of one record type spread over ``trees`` root ids, built one at a time."""
    store = default_store()
    model = EVENT_TYPES[store.get(record).full_name]
    template = sample_record(store.get(record))
    for i in range(count):
        meta = {**template["meta"], "event_id": uuid.uuid4(), "root_id": f"root-{i % trees}"}
        yield model.model_validate({**template, "meta": meta})


def frozen(items: list[Any]) -> list[Any]:
    """``items``, moved out of the garbage collector's generations (they live for the whole run)."""
    gc.collect()
    gc.freeze()
    return items


# -- jobs (child processes) ---------------------------------------------------------------


def job_raw(settings: Settings, record: str, count: int, flush_every: int) -> None:
    serde = Serde()
    events = build_events(record, count)
    first = next(events)
    topic = settings.topic_prefix + topic_of(type(first)).name
    payloads = frozen(
        [
            (e.meta.root_id.encode(), serde.encode(e, topic)) for e in itertools.chain([first], events)
        ]  # before the clock
    )
    producer = KafkaProducer(kafka_config.producer(settings))
    failures: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    producer.produce(topic, payloads[0][1], payloads[0][0])  # connect and get the producer id first
    producer.flush(30)
    clock = measure.JobClock()
    for i, (key, value) in enumerate(payloads, 1):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        if i % flush_every == 0:
            producer.flush(60)
    producer.flush(60)
    if failures:
        raise SystemExit(f"raw producer: {len(failures)} deliveries failed")
    clock.report(len(payloads))


def job_sdk(settings: Settings, record: str, count: int, flush_every: int, key: SigningKey | None = None) -> None:
    with Producer(settings, signing_key=key) as producer:
        producer.publish(next(build_events(record, 1)))  # connect and get the producer id first
        clock = measure.JobClock()
        for i, event in enumerate(build_events(record, count), 1):
            producer.send(event)
            if i % flush_every == 0:
                producer.flush(60)
        producer.flush(60)
        clock.report(count)


def job_build(_settings: Settings, record: str, count: int, _flush_every: int) -> None:
    clock = measure.JobClock()
    deque(build_events(record, count), maxlen=0)
    clock.report(count)


def job_signed(settings: Settings, record: str, count: int, flush_every: int) -> None:
    job_sdk(settings, record, count, flush_every, SigningKey.generate())


JOBS: dict[str, Callable[[Settings, str, int, int], None]] = {
    "raw": job_raw,
    "sdk": job_sdk,
    "signed": job_signed,
    "build": job_build,
}


# -- the parent ---------------------------------------------------------------------------


def run_rounds(settings: Settings, args: argparse.Namespace) -> None:
    labels = {
        "raw": "raw confluent-kafka producer (pre-encoded)",
        "sdk": "agentlog SDK (build model → Avro → broker)",
        "signed": "agentlog SDK, records signed (Ed25519 per batch)",
        "build": "building the models alone (no send)",
    }
    series = {job: measure.Series(label) for job, label in labels.items()}
    env = measure.child_env(settings)
    for _ in range(args.rounds):
        for job in ("raw", "sdk", "signed", "build"):
            argv = [sys.executable, __file__, "--job", job, "--events", str(args.events), "--record", args.record]
            result = measure.run_job([*argv, "--flush-every", str(args.flush_every)], env)
            series[job].add(result.count / result.seconds, result.cpu_s / result.count * 1e6, result.memory)
    size = len(Serde().encode(next(build_events(args.record, 1)), "t"))
    measure.print_table(
        f"publish: {args.events:,} {args.record} events ({size} bytes each), flush every {args.flush_every:,},"
        f" {args.rounds} rounds",
        [series["raw"], series["sdk"], series["signed"]],
        ceiling=series["raw"],
    )
    build_us = series["build"].cpu_us
    sdk_us = series["sdk"].cpu_us
    own = [s - b for s, b in zip(sdk_us, build_us, strict=False)]
    print(
        f"  {'of the SDK CPU per event: building the model':<44}{sorted(build_us)[len(build_us) // 2]:>10.1f} µs,"
        f" the SDK itself {sorted(own)[len(own) // 2]:.1f} µs"
    )
    signed = [s / u for s, u in zip(series["signed"].values, series["sdk"].values, strict=False)]
    print(f"  {'signed / unsigned SDK, per round':<44}" + ", ".join(f"{r:.0%}" for r in signed))
    print("  goal: SDK ≥ 50 % of the raw producer; signed ≥ 70 % of unsigned (≤ 30 % fewer events/s)")


def bench_serde(count: int, rounds: int) -> None:
    store = default_store()
    serde = Serde(store)
    print(f"\nserde on one core ({count:,} records each, CPU time, median of {rounds} rounds)")
    print("(Avro ↔ plain dicts is the serde itself; the model columns add pydantic's dump and validation)")
    columns = ("dict→Avro", "Avro→dict", "model→Avro", "Avro→model")
    print(f"{'record':<18}{'bytes':>7}" + "".join(f"{c:>16}" for c in columns))
    for record in SERDE_RECORDS:
        events = frozen(list(build_events(record, count)))
        name = events[0].avro_name
        values = frozen([e.model_dump() for e in events])
        encoded = frozen([serde.encode_value(name, v, "t") for v in values])
        # Results are dropped as they come (deque of length 0), as a consumer does.
        actions: list[Callable[[], object]] = [
            lambda: deque((serde.encode_value(name, v, "t") for v in values), maxlen=0),  # noqa: B023
            lambda: deque((serde.decode_value(b) for b in encoded), maxlen=0),  # noqa: B023
            lambda: deque((serde.encode(e, "t") for e in events), maxlen=0),  # noqa: B023
            lambda: deque((serde.decode(b) for b in encoded), maxlen=0),  # noqa: B023
        ]
        rates = []
        for action in actions:
            seconds = []
            for _ in range(rounds):
                start = time.process_time()
                action()
                seconds.append(time.process_time() - start)
            rates.append(count / sorted(seconds)[len(seconds) // 2])
        gc.unfreeze()
        print(f"{name.rsplit('.', 1)[-1]:<18}{len(encoded[0]):>7}" + "".join(f"{r:>14,.0f}/s" for r in rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--record", default="SpawnRequested")
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating raw and SDK")
    parser.add_argument("--flush-every", type=int, default=10_000, help="records between flushes, in both senders")
    parser.add_argument("--serde-events", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="keep the topics created")
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        JOBS[args.job](Settings(), args.record, args.events, args.flush_every)
        return
    scratch = measure.Scratch(Settings(), keep=args.keep)
    print(f"publish benchmark on {scratch.base.bootstrap_servers}; {measure.load_average()}")
    try:
        run_rounds(scratch.settings("pub"), args)
        bench_serde(min(args.events, args.serde_events), args.rounds)
    finally:
        scratch.clean()


if __name__ == "__main__":
    main()
