"""``run_worker``: assemble the worker, run the loop, shut down safely.

Threads: the main thread runs the consumer loop (poll, admit, acks, commits); one GPU thread
runs the engine; a small pool encodes and stores images and produces results. Where the worker
is in its life, and how it ends, is one :class:`~streamgen.worker.lifecycle.Lifecycle`: this
module moves it through start-up, signals ask it to stop, and the exit code and the last log
line are read from it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Protocol, runtime_checkable

from streamgen.contracts.progress import progress_codec
from streamgen.engine.types import Engine, Shape
from streamgen.errors import ConfigError, SchemaRegistryUnavailable
from streamgen.exit_codes import EXIT_CONFIG, EXIT_FATAL, EXIT_INCOMPLETE_DRAIN, EXIT_UNEXPECTED
from streamgen.lanes import topic_ranks
from streamgen.settings import Settings
from streamgen.store.base import ObjectStore
from streamgen.telemetry.progress_metrics import ProgressMetrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.tenants import tenant_caps
from streamgen.worker.assembly import WorkerParts, assemble, producer_config
from streamgen.worker.cancel_follower import CancelFollower, cancel_consumer_config
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import PRODUCTION_SEAMS, WorkerSeams
from streamgen.worker.lifecycle import Exit, Lifecycle, Phase
from streamgen.worker.progress_publisher import ProgressPublisher, progress_producer_config
from streamgen.worker.share_startup import check_share_group
from streamgen.worker.size_limits import check_record_size_limits
from streamgen.worker.startup import (
    check_broker,
    check_model_sources,
    check_registry,
    check_store,
)
from streamgen.worker.storage import EncodeImage

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FATAL",
    "EXIT_INCOMPLETE_DRAIN",
    "EXIT_UNEXPECTED",
    "run_worker",
]

log = logging.getLogger(__name__)

# How long a stopping worker waits for the GPU thread to leave its batch (one denoising step
# and the batch's bookkeeping; a step of a large model on a busy GPU is well under this).
STAGE_EXIT_WAIT_S = 30.0


@runtime_checkable
class WarmableEngine(Protocol):
    """An engine that can compile and capture shapes ahead of requests (DiffusionEngine)."""

    def warm_up(self, shapes: Iterable[Shape]) -> dict[Shape, float]: ...


def run_worker(
    settings: Settings,
    *,
    engine: Engine | None = None,
    store: ObjectStore | None = None,
    encode: EncodeImage | None = None,
    hooks: WorkerHooks | None = None,
    install_signal_handlers: bool = True,
    stop: threading.Event | None = None,
    seams: WorkerSeams = PRODUCTION_SEAMS,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); return the process exit code.

    ``seams``: the Kafka clients and the clock to assemble with; the real ones unless a
    benchmark or a test passes its own.

    Whatever the way out, the last log line says so: ``worker ID stopped: exit N (reason)``.
    """
    host = socket.gethostname()
    worker_id = settings.worker.worker_id or f"{host}-{os.getpid()}"
    life = Lifecycle()
    try:
        hooks = hooks or WorkerHooks.from_settings(settings, worker_id=worker_id, host=host)
        start = functools.partial(
            _start, settings, worker_id, host, engine, store, encode, hooks, seams, life
        )
        end = _run(settings, worker_id, life, start, hooks, install_signal_handlers, stop)
    except Exception as exc:
        # A bug, not a fault the worker knows: the traceback for whoever debugs it, then the
        # same last line as every other way out (nothing unsafe was committed: commits only
        # ever follow durable outputs).
        log.critical("worker %s failed unexpectedly", worker_id, exc_info=True)
        end = life.crash(exc)
    level = logging.INFO if end.code == 0 else logging.WARNING
    log.log(level, "worker %s stopped: exit %d (%s)", worker_id, end.code, end.reason)
    return end.code


def _run(
    settings: Settings,
    worker_id: str,
    life: Lifecycle,
    start: Callable[[], WorkerParts],
    hooks: WorkerHooks,
    install_signal_handlers: bool,
    stop: threading.Event | None,
) -> Exit:
    """Start, run and shut down; return how the process ends."""
    try:
        # /metrics and /ready answer from the first moment: 503 until warmed up and joined.
        hooks.serve(ready=life.readiness)
        parts = start()
    except ConfigError as exc:
        # One paragraph for the operator; the traceback only for whoever debugs streamgen.
        log.debug("start-up failed", exc_info=True)
        log.error("worker %s cannot start: %s", worker_id, exc)
        hooks.stopped()
        return life.refuse_start(exc.setting)
    if install_signal_handlers:
        _install_signal_handlers(life)
    if stop is not None:
        _stop_when_set(stop, life)
    parts.hooks.started()
    share = settings.worker.mode == "share"
    log.info(
        "worker %s consuming %s as %s %s (%s)",
        worker_id,
        ", ".join(topic_ranks(settings.topics)),  # the lanes' topics, highest first
        "share group" if share else "group",
        settings.worker.group_id,
        "share mode" if share else f"{settings.worker.group_protocol} protocol",
    )
    if settings.worker.tenants:
        weights = ", ".join(map(str, settings.worker.tenants))
        others = settings.worker.tenant_default_weight
        log.info("tenants share the GPU by weight: %s, others %g", weights, others)
    if tenant_caps(settings.worker) is not None:
        caps = ", ".join(map(str, settings.worker.tenant_max_in_flight)) or "none named"
        others_cap = settings.worker.tenant_default_max_in_flight or "no cap"
        log.info("tenants' caps on requests in flight: %s, others %s", caps, others_cap)
    # 4. Run until told to stop, then drain: finish in-flight work, flush, commit, leave.
    parts.stage.start()
    try:
        parts.loop.run()
    finally:
        complete = _shut_down(parts, life)
        parts.hooks.stopped()
    if life.fatal is not None:
        log.critical("worker %s stopping on a fatal error: %s", worker_id, life.fatal)
    return life.finish(complete=complete)


def _start(
    settings: Settings,
    worker_id: str,
    host: str,
    engine: Engine | None,
    store: ObjectStore | None,
    encode: EncodeImage | None,
    hooks: WorkerHooks,
    seams: WorkerSeams,
    life: Lifecycle,
) -> WorkerParts:
    """Check what can be checked, cheapest first, load the model, warm it up, then join."""
    # 1. The broker answers, accepts our credentials and has the topics: seconds, not the
    #    minutes a model load takes, so a wrong address is reported at once. So does every
    #    check below up to 3: nothing that can be found before the model loads waits for it.
    check_broker(settings, producer_config(settings, worker_id))
    # 1a. Share mode: the broker serves share groups and the group's lock fits a batch.
    share = check_share_group(settings) if settings.worker.mode == "share" else None
    check_record_size_limits(settings)
    results = check_registry(settings)
    # 1b. Read the cancels topic from its beginning while the model loads (cancel_follower.py).
    cancels = CancelSet(
        max_ids=settings.worker.cancels_max_ids,
        max_age_s=settings.worker.cancels_max_age_s,
        on_malformed=hooks.cancel_record_skipped,
    )
    follower = _follow_cancels(settings, worker_id, seams, life, cancels)
    # 2. The store must be reachable, with its bucket, before any work is taken.
    if store is None:
        from streamgen.store import open_store

        store = open_store(settings.store)
    check_store(
        store, create=settings.store.create_bucket, timeout=settings.store.connect_timeout_s
    )
    # 3. The engine loads its models (CUDA asked for and absent stops here, before loading).
    if engine is None:
        check_model_sources(settings.engine.models)
        log.info("start-up checks passed; loading model(s) %s", ", ".join(settings.engine.models))
        from streamgen.engine import DiffusionEngine
        from streamgen.store.init_images import InitImageReader
        from streamgen.telemetry.adapter_metrics import AdapterCollector

        init_images = InitImageReader.from_settings(settings.store, store)
        # Adapters come from the same allowed prefixes, under their own size cap.
        adapter_files = InitImageReader.from_settings(
            settings.store, store, max_bytes=settings.store.adapter_max_bytes
        )
        engine = DiffusionEngine(settings.engine, init_images, adapter_files=adapter_files)
        hooks.metrics.registry.register(AdapterCollector(engine.adapter_stats))
    if encode is None:
        from streamgen.store.encode import encode_image

        encode = encode_image
    # 4. Warm up before joining the group: a worker that compiles after it joined holds
    #    partitions it cannot serve for minutes, and its first requests pay for the compile.
    life.advance(Phase.WARMING)
    _warm_up(settings, engine, hooks)
    # 5. Only now subscribe (assemble): the first assignment makes the worker ready.
    life.advance(Phase.JOINING)
    if follower is not None and follower.is_alive():  # nothing cancelled before is generated
        follower.wait_caught_up(settings.kafka.connect_timeout_s)
    progress = _publish_progress(settings, worker_id, seams, hooks)
    return assemble(
        settings,
        worker_id=worker_id,
        host=host,
        engine=engine,
        store=store,
        encode=encode,
        hooks=hooks,
        seams=seams,
        results=results,
        lifecycle=life,
        cancels=cancels,
        progress=progress,
        share=share,
    )


def _publish_progress(
    settings: Settings, worker_id: str, seams: WorkerSeams, hooks: WorkerHooks
) -> ProgressPublisher | None:
    """The progress events' publisher thread, started; None with ``worker.progress`` off (its
    topic was checked in ``check_broker``). Its schema is registered now, as the result's is."""
    if not settings.worker.progress:
        return None
    codec = progress_codec(settings.kafka, settings.topics.progress)
    try:
        codec.prepare()
    except SchemaRegistryUnavailable as exc:
        raise ConfigError("kafka.schema_registry_url", str(exc)) from None
    publisher = ProgressPublisher(
        seams.progress_producer_factory(progress_producer_config(settings, worker_id)),
        topic=settings.topics.progress,
        worker_id=worker_id,
        encode=codec.encode,
        metrics=ProgressMetrics(hooks.metrics.registry),
    )
    publisher.start()
    log.info(
        "progress events on %s, denoising every %.1f s",
        settings.topics.progress,
        settings.worker.progress_interval_s,
    )
    return publisher


def _follow_cancels(
    settings: Settings, worker_id: str, seams: WorkerSeams, life: Lifecycle, cancels: CancelSet
) -> CancelFollower | None:
    """The cancels topic's follower, filling ``cancels``; it stops when the worker closes.
    None where ``topics.cancels`` is empty: cancellation turned off by the operator (a topic
    that does not exist stopped the start in ``check_broker``, DESIGN invariant 10)."""
    if not settings.topics.cancels:
        log.info("cancellation is off: topics.cancels is empty")
        return None
    follower = CancelFollower(
        seams.cancel_consumer_factory(cancel_consumer_config(settings, worker_id)),
        settings.topics.cancels,
        cancels,
        stopped=life.wait_closing,
    )
    if follower.open(settings.kafka.connect_timeout_s):
        follower.start()
    return follower


def _warm_up(settings: Settings, engine: Engine, hooks: WorkerHooks) -> None:
    from streamgen.engine.warmup import warmup_shapes

    shapes = warmup_shapes(settings)
    start = time.perf_counter()
    if shapes and isinstance(engine, WarmableEngine):
        log.info("warming up %d shape(s) before joining the group", len(shapes))
        engine.warm_up(shapes)
    elif shapes:
        log.warning("engine %s cannot warm up; engine.warmup_shapes ignored", type(engine))
    seconds = time.perf_counter() - start
    hooks.warmed_up(seconds)
    if shapes:
        log.info("warm-up took %.1f s", seconds)


def _shut_down(parts: WorkerParts, life: Lifecycle) -> bool:
    """Drain, or after a fatal error only close out; True if every request became durable."""
    loop = parts.loop
    if life.fatal is not None:
        # Do not wait for a broken GPU: commit only what is already durable, then leave.
        loop.close_out(flush_timeout_s=5.0)
        complete = False
    else:
        complete = loop.drain()
    # Counted before the close: its revoke forgets the partitions, and their count with them.
    unfinished = loop.unfinished()
    parts.consumer.close()  # leaves the group at once so partitions move without a timeout
    # The GPU thread leaves its batch at the next denoising step once closing; waited for, so
    # that the interpreter never finalizes under a running torch call (which aborts the
    # process with SIGABRT instead of the exit code the lifecycle decided).
    parts.stage.join(STAGE_EXIT_WAIT_S)
    if parts.stage.is_alive():
        log.warning("the GPU thread is still in its batch after %.0f s", STAGE_EXIT_WAIT_S)
    if parts.progress is not None:  # after the drain: its STORED events are in the queue
        parts.progress.close()
    if not complete:
        log.warning("%d requests unfinished; they will be redone", unfinished)
    return complete


def _stop_when_set(stop: threading.Event, life: Lifecycle) -> None:
    def watch() -> None:
        stop.wait()
        life.request_stop()

    threading.Thread(target=watch, daemon=True, name="stop-watch").start()


def _install_signal_handlers(life: Lifecycle) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if life.request_stop():
            log.warning("%s again: stopping now; unfinished work will be redone", name)
        else:
            log.info("%s: draining in-flight work, then stopping", name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
