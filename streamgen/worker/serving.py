"""The serving path both ways of consuming share: outputs (results, dead letters, claim
checks), the work queue's micro-batcher and the GPU thread, built from Settings in data-flow
order. What consumes records and decides what becomes of them once durable (the consumer-group
loop in ``assembly.py``, the share-group loop in ``share_assembly.py``) is built around it."""

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
from streamgen.settings import Settings
from streamgen.store.base import ObjectStore
from streamgen.store.prefixes import AllowedPrefixes
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.tenants import tenant_weight
from streamgen.worker.backoff import Backoff
from streamgen.worker.batcher import MicroBatcher
from streamgen.worker.cancels import CancelSet
from streamgen.worker.claim_check import ClaimChecker
from streamgen.worker.clients import Clock, OutputSender, SenderFactory, WorkerSeams, wall_clock
from streamgen.worker.events import LoopEvents
from streamgen.worker.generation import CurrentGenerations, GenerationStage
from streamgen.worker.intake import Intake, RequestCheck
from streamgen.worker.lifecycle import Lifecycle
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.progress import NO_PROGRESS, ProgressReporter
from streamgen.worker.progress_publisher import ProgressPublisher
from streamgen.worker.request_lanes import WorkerLanes, gpu_cost, item_tenant
from streamgen.worker.storage import EncodeImage, ImageWriter, StoreRetry
from streamgen.worker.tenant_share import TenantShare
from streamgen.worker.work_queue import WorkQueue

__all__ = ["RuledEngine", "Serving", "intake_for", "producer_config", "serving_path"]


def producer_config(settings: Settings, worker_id: str) -> dict[str, Any]:
    return kafka_config.producer_config(
        settings.kafka, defaults={"client.id": f"{worker_id}-out"}, route_logs=True
    )


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


@dataclass
class Serving:
    """What a consuming loop hands records to and hears durable outcomes from, and what the
    loop's builder needs besides (``assembly.py``, ``share_assembly.py``)."""

    settings: Settings
    worker_id: str
    hooks: WorkerHooks
    seams: WorkerSeams
    lifecycle: Lifecycle
    cancels: CancelSet
    reporter: ProgressReporter
    events: LoopEvents  # what the GPU and output threads tell the loop
    publisher: OutputSender
    sink: OutcomeSink
    work: WorkQueue
    stage: GenerationStage
    output_pool: ThreadPoolExecutor
    backoff: Backoff
    lanes: WorkerLanes
    intake: Intake


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


def serving_path(
    settings: Settings,
    *,
    worker_id: str,
    host: str,
    engine: Engine,
    store: ObjectStore,
    encode: EncodeImage,
    hooks: WorkerHooks,
    seams: WorkerSeams,
    results: AvroCodec[GenerationResult] | None,
    lifecycle: Lifecycle | None,
    cancels: CancelSet | None,
    progress: ProgressPublisher | None,
    generations: CurrentGenerations,
    max_wait_s: float,
) -> Serving:
    """Outputs, work queue and GPU thread (not started); the rest as ``assemble`` says.
    ``generations`` says whether a ticket's work is still the worker's to finish;
    ``max_wait_s`` how long a partial batch waits for more requests of its shape."""
    w = settings.worker
    if cancels is None:
        cancels = CancelSet(max_ids=w.cancels_max_ids, max_age_s=w.cancels_max_age_s)
    lifecycle = lifecycle or Lifecycle.joining()
    reporter = NO_PROGRESS if progress is None else progress.reporter(w.progress_interval_s)
    events = LoopEvents()
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
            max_wait_s=max_wait_s,
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
    # 3. The GPU thread, storing images on the output pool, off the GPU path.
    stage = GenerationStage(
        engine=engine,
        queue=work,
        generations=generations,
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
    intake = intake_for(
        settings, engine.model_rules() if isinstance(engine, RuledEngine) else None, seams.clock
    )
    return Serving(
        settings,
        worker_id,
        hooks,
        seams,
        lifecycle,
        cancels,
        reporter,
        events,
        publisher,
        sink,
        work,
        stage,
        output_pool,
        backoff,
        lanes,
        intake,
    )
