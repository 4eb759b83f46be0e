"""What the real-broker queue benchmarks (lanes.py, tenants.py) share: the loaded engine and
its one-batch time, fresh topics and worker settings per run, and the results stopwatch."""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from benchmarks.models import MODEL, model_dir, on_engine_thread, requests
from benchmarks.report import environment
from streamgen.contracts.codec import result_codec
from streamgen.engine.types import Engine
from streamgen.local.kafka import KafkaBroker
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import (
    EngineSettings,
    KafkaSettings,
    Settings,
    StoreSettings,
    TopicSettings,
    WorkerSettings,
)

__all__ = ["fresh_settings", "loaded_engine", "new_report", "read_results", "results_consumer"]


def new_report(benchmark: str, args: argparse.Namespace) -> dict[str, Any]:
    """A report naming the benchmark, its arguments and where it ran."""
    return {
        "benchmark": benchmark,
        "settings": vars(args),
        "environment": environment(with_torch=True, with_stack=True),
    }


def loaded_engine(args: argparse.Namespace) -> tuple[EngineSettings, Engine, float]:
    """The engine at ``--batch-size`` and one batch's time (median of 3 after a warm-up)."""
    from streamgen.engine.engine import DiffusionEngine

    settings = EngineSettings(
        models={MODEL: str(model_dir(args))}, device=args.device, max_batch_size=args.batch_size
    )
    engine = DiffusionEngine(settings)
    batch = list(requests(args.batch_size, args, tag="-alone"))
    times = [on_engine_thread(lambda: _timed(engine, batch)) for _ in range(4)][1:]
    return settings, engine, round(statistics.median(times), 4)


def _timed(engine: Engine, batch: list[Any]) -> float:
    start = time.perf_counter()
    engine.generate(batch)
    return time.perf_counter() - start


def fresh_settings(
    broker: KafkaBroker,
    engine: EngineSettings,
    images: str,
    *,
    partitions: int,
    max_in_flight: int,
    **topics: Any,
) -> Settings:
    """Topics of their own (``topics``: e.g. ``lanes``), created; a group of its own."""
    tag = uuid.uuid4().hex[:8]
    names = TopicSettings(
        requests=f"bench-{tag}.requests",
        results=f"bench-{tag}.results",
        dead_letter=f"bench-{tag}.dead-letter",
        cancels="",
        partitions=partitions,
        retention_ms=3_600_000,
        **topics,
    )
    create_topics(broker.bootstrap_servers, plan_topics(names))
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
        topics=names,
        store=StoreSettings(url=f"file://{images}/{tag}"),
        engine=engine,
        worker=WorkerSettings(group_id=f"bench-{tag}", max_in_flight=max_in_flight),
    )


def read_results(settings: Settings, read: dict[str, float], stop: threading.Event) -> None:
    """The stopwatch: each result's request id and the wall clock it was read at."""
    codec = result_codec(settings.kafka, settings.topics.results)
    consumer = results_consumer(settings)
    try:
        while not stop.is_set():
            for message in consumer.consume(500, 0.05):
                if message.error() is None:
                    read[codec.decode(message.value()).request_id] = time.time()
    finally:
        consumer.close()


def results_consumer(settings: Settings) -> Consumer:
    """A consumer of the results topic (one partition) from its start, fetching promptly."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(settings.topics.results, 0, 0)])
    return consumer
