"""``run_worker``: build the worker's parts from Settings, run the loop, shut down safely.

Threads: the main thread runs the consumer loop (poll, admit, acks, commits); one GPU thread
runs the engine; a small pool encodes and stores images and produces results.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from confluent_kafka import Consumer

from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import WorkerIdentity
from streamgen.contracts.validation import validate
from streamgen.engine.types import Engine
from streamgen.settings import Settings
from streamgen.store.base import ObjectStore
from streamgen.worker.backoff import Backoff
from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.generation import GenerationStage
from streamgen.worker.hooks import WorkerHooks
from streamgen.worker.intake import Intake
from streamgen.worker.loop import ConsumerLoop, Durable, Fatal, LoopLimits
from streamgen.worker.offsets import OffsetTracker
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.ownership import Ownership
from streamgen.worker.publisher import Publisher
from streamgen.worker.rebalance import RebalanceHandler
from streamgen.worker.storage import EncodeImage, ImageWriter
from streamgen.worker.work_queue import WorkQueue

__all__ = ["EXIT_FATAL", "EXIT_INCOMPLETE_DRAIN", "run_worker"]

log = logging.getLogger(__name__)

EXIT_INCOMPLETE_DRAIN = 2  # stopped before every in-flight request was durable (redone later)
EXIT_FATAL = 3  # device lost, retry budget exhausted, or a bug: nothing unsafe was committed

# How long a revoked partition's in-flight work may take to become durable before it is
# abandoned to the next owner; short, because the whole group waits on our revoke.
REVOKE_GRACE_S = 5.0


def consumer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    w = settings.worker
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": w.group_id,
        "client.id": worker_id,
        # At-least-once: offsets are stored and committed by hand, behind durable outputs.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "max.poll.interval.ms": w.max_poll_interval_ms,
        "session.timeout.ms": w.session_timeout_ms,
        **settings.kafka.client_config,
    }
    if w.group_instance_id:
        config["group.instance.id"] = w.group_instance_id
    return config


def producer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": f"{worker_id}-out",
        **settings.kafka.client_config,
    }


def run_worker(
    settings: Settings,
    *,
    engine: Engine | None = None,
    store: ObjectStore | None = None,
    encode: EncodeImage | None = None,
    hooks: WorkerHooks | None = None,
    install_signal_handlers: bool = True,
    stop: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); return the process exit code."""
    host = socket.gethostname()
    worker_id = settings.worker.worker_id or f"{host}-{os.getpid()}"
    w = settings.worker

    # 1. Outputs first: the store must be reachable before we take any work.
    if store is None:
        from streamgen.store import open_store

        store = open_store(settings.store)
    store.ensure_ready()
    if engine is None or encode is None:
        from streamgen.engine import DiffusionEngine
        from streamgen.engine.encode import encode_image

        engine = engine or DiffusionEngine(settings.engine, store=store)
        encode = encode or encode_image
    hooks = hooks or WorkerHooks.from_settings(settings, worker_id=worker_id, host=host)
    identity = WorkerIdentity(
        worker_id=worker_id, host=host, device=hooks.device, group_id=w.group_id
    )
    backoff = Backoff(w.retry_initial_ms / 1000, w.retry_max_ms / 1000)
    publisher = Publisher(
        producer_config(settings, worker_id),
        backoff=backoff,
        retry_budget_s=w.retry_budget_s,
        on_retry=hooks.produce_retry,
    )
    events: queue.SimpleQueue[Durable | Fatal] = queue.SimpleQueue()
    results = result_codec(settings.kafka, settings.topics.results)
    sink = OutcomeSink(
        publisher,
        results_topic=settings.topics.results,
        dead_letter_topic=settings.topics.dead_letter,
        group_id=w.group_id,
        identity=identity,
        encode_result=results.encode,
        on_durable=lambda ticket, summary: events.put(Durable(ticket, summary)),
    )

    # 2. The hand-off between the consumer and the GPU: a micro-batcher per shape.
    assert engine is not None and encode is not None
    work = WorkQueue(
        MicroBatcher(
            max_wait_s=w.max_wait_ms / 1000,
            max_batch_size=engine.max_batch_size,
            fairness=w.priority_fairness,
        )
    )
    tracker = OffsetTracker()
    ownership = Ownership()
    stopping = threading.Event()
    writer = ImageWriter(
        store=store,
        encode=encode,
        image_format=settings.store.image_format,
        backoff=backoff,
        retry_budget_s=w.retry_budget_s,
        on_retry=hooks.store_retry,
        stopping=stopping.is_set,
    )
    output_pool = ThreadPoolExecutor(settings.engine.encode_threads, "streamgen-out")
    stage = GenerationStage(
        engine=engine,
        queue=work,
        ownership=ownership,
        sink=sink,
        writer=writer,
        output_pool=output_pool,
        max_attempts=w.max_attempts,
        on_fatal=lambda exc: events.put(Fatal(exc)),
        on_batch=hooks.batch,
    )

    # 3. The consumer: subscribed with rebalance callbacks that keep commits safe.
    requests = request_codec(settings.kafka, settings.topics.requests)
    known_models = set(settings.engine.models) | {"default"}
    from streamgen.engine.schedulers import SCHEDULERS

    def check(request: GenerationRequest) -> GenerationRequest:
        return validate(
            request,
            settings.validation,
            models=known_models,
            schedulers=SCHEDULERS,
            now=datetime.now(UTC),
        )

    consumer = Consumer(consumer_config(settings, worker_id))
    loop = ConsumerLoop(
        consumer=consumer,
        publisher=publisher,
        tracker=tracker,
        work=work,
        intake=Intake(decode=requests.decode, validate=check),
        sink=sink,
        engine=engine,
        limits=LoopLimits(
            max_in_flight=w.max_in_flight,
            commit_interval_s=w.commit_interval_ms / 1000,
            drain_timeout_s=w.drain_timeout_s,
        ),
        events=events,
        decode_backoff=backoff,
        hooks=hooks,
    )
    rebalance = RebalanceHandler(
        tracker=tracker,
        ownership=ownership,
        queue=work,
        commit=lambda tps: loop.commit(only=tps),
        serve_outputs=loop.serve_outputs,
        is_paused=lambda: loop.paused,
        revoke_grace_s=REVOKE_GRACE_S,
        on_event=hooks.rebalance,
    )
    consumer.subscribe(
        [settings.topics.requests],
        on_assign=rebalance.on_assign,
        on_revoke=rebalance.on_revoke,
        on_lost=rebalance.on_lost,
    )
    if install_signal_handlers:
        _install_signal_handlers(loop)
    if stop is not None:

        def watch_stop() -> None:
            stop.wait()
            loop.request_stop()

        threading.Thread(target=watch_stop, daemon=True, name="stop-watch").start()
    hooks.started()
    log.info("worker %s consuming %s as group %s", worker_id, settings.topics.requests, w.group_id)

    # 4. Run until told to stop, then drain: finish in-flight work, flush, commit, leave.
    stage.start()
    try:
        loop.run()
    finally:
        complete = _shut_down(loop, stage, stopping, output_pool, consumer)
        hooks.stopped()
    if loop.fatal is not None:
        log.critical("worker %s stopping on a fatal error: %s", worker_id, loop.fatal)
        return EXIT_FATAL
    return 0 if complete else EXIT_INCOMPLETE_DRAIN


def _shut_down(
    loop: ConsumerLoop,
    stage: GenerationStage,
    stopping: threading.Event,
    output_pool: ThreadPoolExecutor,
    consumer: Consumer,
) -> bool:
    def stop_generation() -> None:
        stopping.set()
        stage.stop()
        output_pool.shutdown(wait=False, cancel_futures=True)

    if loop.fatal is not None:
        # Do not wait for a broken GPU: commit only what is already durable, then leave.
        stop_generation()
        loop.publisher.flush(5.0)
        loop.serve_outputs(0.0)
        loop.commit()
        complete = False
    else:
        complete = loop.drain(stop_generation)
    consumer.close()  # leaves the group at once so the partitions move without a timeout
    if not complete:
        log.warning(
            "%d requests were not finished; they will be redone", loop.tracker.outstanding()
        )
    return complete


def _install_signal_handlers(loop: ConsumerLoop) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if loop.stop_requested:
            log.warning("%s again: stopping now; unfinished work will be redone", name)
        else:
            log.info("%s: draining in-flight work, then stopping", name)
        loop.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
