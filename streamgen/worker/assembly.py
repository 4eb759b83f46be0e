"""Building the worker's parts from Settings, in data-flow order. The lifecycle they read is
made and moved by ``run_worker`` (``worker/lifecycle.py``), not here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from streamgen import kafka_config
from streamgen.contracts.codec import AvroCodec
from streamgen.contracts.result import GenerationResult
from streamgen.engine.types import Engine
from streamgen.settings import GroupProtocol, Settings
from streamgen.store.base import ObjectStore
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.tenants import tenant_caps
from streamgen.worker.cancels import CancelSet
from streamgen.worker.clients import (
    PRODUCTION_SEAMS,
    RequestConsumer,
    ShareRequestConsumer,
    WorkerSeams,
    message_offset,
    message_partition,
    message_size,
)
from streamgen.worker.commits import Committer
from streamgen.worker.fetch_buffer import FetchBuffer
from streamgen.worker.generation import GenerationStage
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.loop import ConsumerLoop, LoopLimits
from streamgen.worker.offsets import OffsetTracker
from streamgen.worker.progress_publisher import ProgressPublisher
from streamgen.worker.rebalance import RebalanceHandler
from streamgen.worker.serving import (
    RuledEngine,
    Serving,
    intake_for,
    producer_config,
    serving_path,
)
from streamgen.worker.share_acks import ShareLedger
from streamgen.worker.share_assembly import share_loop
from streamgen.worker.share_loop import ShareLoop
from streamgen.worker.share_startup import ShareGroupFacts
from streamgen.worker.stalls import StallWatchdog
from streamgen.worker.storage import EncodeImage

__all__ = [
    "RuledEngine",
    "WorkerParts",
    "assemble",
    "consumer_config",
    "group_protocol_config",
    "intake_for",
    "producer_config",
]

# How long a revoked partition's in-flight work may take to become durable before it is
# abandoned to the next owner; short, because the whole group waits on our revoke.
REVOKE_GRACE_S = 5.0


def consumer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    w = settings.worker
    defaults: dict[str, Any] = {
        "client.id": worker_id,
        # At-least-once: offsets are stored and committed by hand, behind durable outputs.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": w.max_poll_interval_ms,
        # After a pause, librdkafka waits this long before fetching a partition again (1 s by
        # default: a median 455 ms stall at every resume was measured). Pauses are rare now
        # (the fetch buffer), but each must cost one fetch round trip, not a second.
        "fetch.queue.backoff.ms": 20,
        **group_protocol_config(w.group_protocol, w.session_timeout_ms),
    }
    static = {"group.instance.id": w.group_instance_id} if w.group_instance_id else {}
    return kafka_config.consumer_config(
        settings.kafka, w.group_id, defaults=defaults, required=static
    )


def group_protocol_config(protocol: GroupProtocol, session_timeout_ms: int) -> dict[str, Any]:
    """The membership settings of ``worker.group_protocol``.

    Under KIP-848 (``consumer``) the broker assigns partitions and owns the session timeout
    (the group config ``consumer.session.timeout.ms``); librdkafka refuses the classic
    protocol's ``partition.assignment.strategy`` and ``session.timeout.ms`` there.
    """
    if protocol == "consumer":
        return {"group.protocol": "consumer"}
    return {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": session_timeout_ms,
    }


@dataclass
class WorkerParts:
    worker_id: str
    consumer: RequestConsumer | ShareRequestConsumer
    loop: ConsumerLoop | ShareLoop  # how records are consumed: worker.mode
    stage: GenerationStage
    output_pool: ThreadPoolExecutor
    hooks: WorkerHooks
    cancels: CancelSet
    progress: ProgressPublisher | None = None  # worker.progress on: closed after the drain


def assemble(
    settings: Settings,
    *,
    worker_id: str,
    host: str,
    engine: Engine,
    store: ObjectStore,
    encode: EncodeImage,
    hooks: WorkerHooks,
    seams: WorkerSeams = PRODUCTION_SEAMS,
    results: AvroCodec[GenerationResult] | None = None,
    lifecycle: Lifecycle | None = None,
    cancels: CancelSet | None = None,
    progress: ProgressPublisher | None = None,
    share: ShareGroupFacts | None = None,
) -> WorkerParts:
    """Build the worker's parts and subscribe.

    ``share``: what the start-up check found of the share group (worker.mode=share,
    ``share_startup.check_share_group``); None: a consumer group (worker.mode=group).

    ``lifecycle`` is the worker's, in JOINING (``run_worker`` moved it through start-up); a
    caller that assembles without starting (tests, benchmarks) gets a fresh one in JOINING.

    ``seams`` builds the Kafka clients (confluent-kafka's ``Consumer``, the ``Publisher``) and
    tells the time validation reads: in-memory clients run the same loop without a broker.
    ``results`` is the result codec the start-up check registered, so a start registers once.
    ``cancels`` is what ``run_worker``'s cancel follower fills; by default an empty one that a
    test or a benchmark may fill. ``progress``: where progress events go (worker.progress).
    """
    # 1-3. Outputs, the micro-batcher and the GPU thread (serving.py), then 4. the loop that
    #    consumes records for them: how records are consumed is one seam (DESIGN invariant 12).
    serve = partial(
        serving_path,
        settings,
        worker_id=worker_id,
        host=host,
        engine=engine,
        store=store,
        encode=encode,
        hooks=hooks,
        seams=seams,
        results=results,
        lifecycle=lifecycle,
        cancels=cancels,
        progress=progress,
    )
    consumer: RequestConsumer | ShareRequestConsumer
    loop: ConsumerLoop | ShareLoop
    if share is None:
        tracker = OffsetTracker()  # also the one owner of which partition generations are ours
        # Work of partitions that moved away is dropped (the tracker's generations).
        serving = serve(generations=tracker, max_wait_s=settings.worker.max_wait_ms / 1000)
        consumer, loop = _group_loop(serving, tracker)
    else:
        ledger = ShareLedger()  # the one owner of which lent records this worker holds
        # No batch waits for more requests: a round's records are all there will be.
        serving = serve(generations=ledger, max_wait_s=0.0)
        consumer, loop = share_loop(serving, ledger, share)
    return WorkerParts(
        worker_id,
        consumer,
        loop,
        serving.stage,
        serving.output_pool,
        hooks,
        serving.cancels,
        progress,
    )


def _group_loop(serving: Serving, tracker: OffsetTracker) -> tuple[RequestConsumer, ConsumerLoop]:
    """The consumer-group loop, subscribed with rebalance callbacks that keep commits safe."""
    settings, worker_id, hooks, lifecycle = (
        serving.settings,
        serving.worker_id,
        serving.hooks,
        serving.lifecycle,
    )
    w, lanes, output_pool = settings.worker, serving.lanes, serving.output_pool
    committer = Committer(tracker, on_committed=hooks.committed)
    consumer = serving.seams.consumer_factory(
        {**consumer_config(settings, worker_id), "on_commit": committer.on_commit}
    )
    buffer: FetchBuffer[Any] = FetchBuffer(
        max_records=w.fetch_buffer_records,
        max_bytes=w.fetch_buffer_bytes,
        partition_of=message_partition,
        offset_of=message_offset,
        size_of=message_size,
        lane_of=lanes.of_partition,
        lanes=lanes.scheduler(),
    )
    loop = ConsumerLoop(
        consumer=consumer,
        publisher=serving.publisher,
        tracker=tracker,
        work=serving.work,
        cancels=serving.cancels,
        intake=serving.intake,
        sink=serving.sink,
        limits=LoopLimits(
            max_in_flight=w.max_in_flight,
            commit_interval_s=w.commit_interval_ms / 1000,
            drain_timeout_s=w.drain_timeout_s,
            lane_reserve=lanes.reserve,
        ),
        outputs=output_pool,
        events=serving.events,
        lifecycle=lifecycle,
        decode_backoff=serving.backoff,
        hooks=hooks,
        committer=committer,
        buffer=buffer,
        stalls=StallWatchdog(  # records waiting: fetched, or set aside by a tenant's cap
            consumer,
            w.stall_timeout_s,
            buffered=lambda tp: buffer.count(tp) + loop.deferrals.count(tp),
            on_stall=hooks.partition_stall,
        ),
        progress=serving.reporter,
        tenant_caps=tenant_caps(w),
    )
    rebalance = RebalanceHandler(
        tracker=tracker,
        lifecycle=lifecycle,
        queue=serving.work,
        commit=lambda tps: loop.commit_now(only=tps),
        serve_outputs=loop.serve_outputs,
        adopt=loop.pauses.adopt,
        drop_fetched=loop.drop_fetched,
        revoke_grace_s=REVOKE_GRACE_S,
        on_event=hooks.rebalance,
    )
    consumer.subscribe(
        list(lanes.topics),
        on_assign=rebalance.on_assign,
        on_revoke=rebalance.on_revoke,
        on_lost=rebalance.on_lost,
    )
    return consumer, loop
