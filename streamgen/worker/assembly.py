"""Building the worker's parts from Settings, in data-flow order. The lifecycle they read is
made and moved by ``run_worker`` (``worker/lifecycle.py``), not here."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

from streamgen import kafka_config
from streamgen.contracts.codec import AvroCodec, request_codec, result_codec
from streamgen.contracts.result import GenerationResult, WorkerIdentity
from streamgen.contracts.validation import LoadedModelRules
from streamgen.engine.types import Engine
from streamgen.settings import GroupProtocol, Settings
from streamgen.store.base import ObjectStore
from streamgen.store.prefixes import AllowedPrefixes
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.tenants import tenant_caps, tenant_weight
from streamgen.worker.backoff import Backoff
from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.cancels import CancelSet
from streamgen.worker.claim_check import ClaimChecker
from streamgen.worker.clients import (
    PRODUCTION_SEAMS,
    Clock,
    OutputSender,
    RequestConsumer,
    SenderFactory,
    WorkerSeams,
    message_offset,
    message_partition,
    message_size,
    wall_clock,
)
from streamgen.worker.commits import Committer
from streamgen.worker.events import LoopEvents
from streamgen.worker.fetch_buffer import FetchBuffer
from streamgen.worker.generation import GenerationStage
from streamgen.worker.intake import Intake, RequestCheck
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.loop import ConsumerLoop, LoopLimits
from streamgen.worker.offsets import OffsetTracker
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.progress import NO_PROGRESS
from streamgen.worker.progress_publisher import ProgressPublisher
from streamgen.worker.rebalance import RebalanceHandler
from streamgen.worker.request_lanes import WorkerLanes, gpu_cost, item_tenant
from streamgen.worker.stalls import StallWatchdog
from streamgen.worker.storage import EncodeImage, ImageWriter, StoreRetry
from streamgen.worker.tenant_share import TenantShare
from streamgen.worker.work_queue import WorkQueue

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


def producer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    return kafka_config.producer_config(
        settings.kafka, defaults={"client.id": f"{worker_id}-out"}, route_logs=True
    )


@dataclass
class WorkerParts:
    worker_id: str
    consumer: RequestConsumer
    loop: ConsumerLoop
    stage: GenerationStage
    output_pool: ThreadPoolExecutor
    hooks: WorkerHooks
    cancels: CancelSet
    progress: ProgressPublisher | None = None  # worker.progress on: closed after the drain


def _outputs(
    settings: Settings,
    identity: WorkerIdentity,
    hooks: WorkerHooks,
    events: LoopEvents,
    *,
    store: ObjectStore,
    store_retry: StoreRetry,
    output_pool: Executor,
    make_sender: SenderFactory,
    results: AvroCodec[GenerationResult] | None,
) -> tuple[OutputSender, OutcomeSink]:
    w = settings.worker
    publisher = make_sender(
        producer_config(settings, identity.worker_id),
        backoff=Backoff(w.retry_initial_ms / 1000, w.retry_max_ms / 1000),
        retry_budget_s=w.retry_budget_s,
        on_retry=hooks.produce_retry,
    )
    if results is None:  # not checked at start-up (tests, benchmarks): register it now
        results = result_codec(settings.kafka, settings.topics.results)
        results.prepare()
    sink = OutcomeSink(
        publisher,
        results_topic=settings.topics.results,
        dead_letter_topic=settings.topics.dead_letter,
        group_id=w.group_id,
        identity=identity,
        encode_result=results.encode,
        events=events,
        tracer=hooks.tracer,
        claims=ClaimChecker(
            store=store,
            retry=store_retry,
            send=publisher.send,
            encode_result=results.encode,
            pool=output_pool,
            events=events,
        ),
    )
    return publisher, sink


@runtime_checkable
class RuledEngine(Protocol):
    """An engine that knows what each of its loaded models can honour (DiffusionEngine)."""

    def model_rules(self) -> LoadedModelRules: ...


def intake_for(
    settings: Settings, model_rules: LoadedModelRules | None = None, clock: Clock = wall_clock
) -> Intake:
    """Decode with the configured framing, validate against the configured bounds, models
    and init-image prefixes, and against ``model_rules``: what the model a request names can
    honour (its size multiple, steps, guidance, ...), so such a request is dead-lettered at
    ``validate`` before it takes a place in a batch."""
    from streamgen.engine.schedulers import SCHEDULERS

    check = RequestCheck(
        settings.validation,
        models=frozenset(settings.engine.models) | {"default"},
        schedulers=SCHEDULERS,
        init_images=AllowedPrefixes.from_settings(settings.store),
        model_rules=model_rules,
        clock=clock,
    )
    return Intake(
        decode=request_codec(settings.kafka, settings.topics.requests).decode, validate=check
    )


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
) -> WorkerParts:
    """Build the worker's parts and subscribe.

    ``lifecycle`` is the worker's, in JOINING (``run_worker`` moved it through start-up); a
    caller that assembles without starting (tests, benchmarks) gets a fresh one in JOINING.

    ``seams`` builds the Kafka clients (confluent-kafka's ``Consumer``, the ``Publisher``) and
    tells the time validation reads: in-memory clients run the same loop without a broker.
    ``results`` is the result codec the start-up check registered, so a start registers once.
    ``cancels`` is what ``run_worker``'s cancel follower fills; by default an empty one that a
    test or a benchmark may fill. ``progress``: where progress events go (worker.progress).
    """
    w = settings.worker
    if cancels is None:
        cancels = CancelSet(max_ids=w.cancels_max_ids, max_age_s=w.cancels_max_age_s)
    lifecycle = lifecycle or Lifecycle.joining()
    reporter = NO_PROGRESS if progress is None else progress.reporter(w.progress_interval_s)
    events = LoopEvents()  # what the GPU and output threads tell the consumer loop
    identity = WorkerIdentity(
        worker_id=worker_id, host=host, device=hooks.device, group_id=w.group_id
    )
    # 1. Outputs: results and dead letters, durable when the broker acknowledges them; those
    #    too large to publish go out claim-checked, their bytes stored by the output pool.
    backoff = Backoff(w.retry_initial_ms / 1000, w.retry_max_ms / 1000)
    # Once the worker is closing, a store retry gives up: its request is redone after restart.
    closing = lambda: lifecycle.closing  # noqa: E731
    store_retry = StoreRetry(backoff, w.retry_budget_s, hooks.store_retry, closing)
    output_pool = ThreadPoolExecutor(w.encode_threads, "streamgen-out")
    publisher, sink = _outputs(
        settings,
        identity,
        hooks,
        events,
        store=store,
        store_retry=store_retry,
        output_pool=output_pool,
        make_sender=seams.sender_factory,
        results=results,
    )
    # 2. The hand-off between the consumer and the GPU: a micro-batcher per shape, choosing
    #    by priority lane (one lane without topics.lanes), then by tenant within the lane.
    lanes, weight = WorkerLanes.from_settings(settings), tenant_weight(w)
    work = WorkQueue(
        MicroBatcher(
            max_wait_s=w.max_wait_ms / 1000,
            max_batch_size=engine.max_batch_size,
            fairness=w.priority_fairness,
            lanes=lanes.scheduler(),
            cost=gpu_cost,
            tenants=None if weight is None else partial(TenantShare, weight),
            tenant_of=item_tenant,
        ),
        engine.shape_of,
        lane_of=lanes.of_item,
    )
    tracker = OffsetTracker()  # also the one owner of which partition generations are ours
    # 3. The GPU thread, storing images on the output pool, off the GPU path.
    stage = GenerationStage(
        engine=engine,
        queue=work,
        generations=tracker,
        cancels=cancels,
        sink=sink,
        writer=ImageWriter(store, encode, settings.store.image_format, store_retry),
        output_pool=output_pool,
        max_attempts=w.max_attempts,
        backoff=backoff,
        retry_budget_s=w.retry_budget_s,
        events=events,
        lifecycle=lifecycle,
        clock=seams.clock,
        hooks=hooks,
        progress=reporter,
    )
    # 4. The consumer loop, subscribed with rebalance callbacks that keep commits safe.
    committer = Committer(tracker, on_committed=hooks.committed)
    consumer = seams.consumer_factory(
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
        publisher=publisher,
        tracker=tracker,
        work=work,
        cancels=cancels,
        intake=intake_for(
            settings,
            engine.model_rules() if isinstance(engine, RuledEngine) else None,
            seams.clock,
        ),
        sink=sink,
        limits=LoopLimits(
            max_in_flight=w.max_in_flight,
            commit_interval_s=w.commit_interval_ms / 1000,
            drain_timeout_s=w.drain_timeout_s,
            lane_reserve=lanes.reserve,
        ),
        outputs=output_pool,
        events=events,
        lifecycle=lifecycle,
        decode_backoff=backoff,
        hooks=hooks,
        committer=committer,
        buffer=buffer,
        stalls=StallWatchdog(  # records waiting: fetched, or set aside by a tenant's cap
            consumer,
            w.stall_timeout_s,
            buffered=lambda tp: buffer.count(tp) + loop.deferrals.count(tp),
            on_stall=hooks.partition_stall,
        ),
        progress=reporter,
        tenant_caps=tenant_caps(w),
    )
    rebalance = RebalanceHandler(
        tracker=tracker,
        lifecycle=lifecycle,
        queue=work,
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
    return WorkerParts(worker_id, consumer, loop, stage, output_pool, hooks, cancels, progress)
