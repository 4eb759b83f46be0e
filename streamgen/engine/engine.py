"""The diffusion engine: a list of validated requests in, one outcome per request out."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, datetime

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import LoadedModelRules, deadline_expired
from streamgen.engine import img2img
from streamgen.engine.adapters import AdapterLoader, AdapterStats, ScaledAdapter, Uncompiled
from streamgen.engine.aot import AotModules
from streamgen.engine.batch_failures import run_isolating
from streamgen.engine.buckets import batch_buckets
from streamgen.engine.compile_cache import CompileCache
from streamgen.engine.decode import Decoder
from streamgen.engine.families import PipelineParts
from streamgen.engine.graphs import BucketGraphs, NoisePredictor, eager_noise
from streamgen.engine.inputs import StoredInputs
from streamgen.engine.knobs import Placement, check_knobs
from streamgen.engine.loaded_model import LoadedModel, device_label, load_model
from streamgen.engine.loading import check_dtype, model_sources, resolve_device
from streamgen.engine.memory import CPU_MAX_BATCH, CUDA_MAX_BATCH, BatchLimits
from streamgen.engine.requests import ImageRow, chunks, expand_rows, not_retryable, reject_reason
from streamgen.engine.seeds import request_seed
from streamgen.engine.stages import RowResult, run_batch, synthetic_rows
from streamgen.engine.types import CancelCheck, GenerationOutcome, Shape, StepObserver, shape_of
from streamgen.errors import (
    ConfigError,
    FatalError,
    GenerationFailed,
    InvalidRequest,
    RequestCancelled,
    StoreUnavailable,
)
from streamgen.settings import EngineSettings

__all__ = ["DiffusionEngine"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Warm-up and memory-probe batches run this many steps: compilation, cuDNN's search, graph
# capture and peak memory depend on tensor shapes only, never on the number of steps.
WARM_UP_STEPS = 2


class DiffusionEngine:
    """Batched generation over diffusers components (see ``denoise`` for why it is exact)."""

    def __init__(
        self,
        settings: EngineSettings,
        init_images: img2img.InitImageSource | None = None,
        *,
        adapter_files: img2img.InitImageSource | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        """``init_images`` reads img2img init images and ``adapter_files`` LoRA adapters
        (``InitImageReader``: the allowed prefixes and a size cap each); without one, every
        request that needs it fails."""
        self.settings = settings
        self.device = resolve_device(settings.device)
        check_dtype(settings.dtype, self.device)  # each model's dtype depends on its family
        check_knobs(settings, self.device)
        sources = model_sources(settings.models)
        if not sources:
            raise ConfigError("engine.models", "no model configured; pass --model NAME=PATH")
        # A request that names no model asks for "default", an alias of the first model: shapes
        # (so batches, batch limits and logs) carry that model's own name, and requests that
        # name it either way share batches.
        first = next(iter(settings.models), "default")
        self._model_names = {name: first if name == "default" else name for name in sources}
        loader = None
        if adapter_files is not None:
            loader = AdapterLoader(
                adapter_files, cache_bytes=settings.adapter_cache_bytes, device=self.device
            )
        self._inputs = StoredInputs(init_images, loader)
        self._clock = clock
        # Before any model is compiled: point torch at the persistent caches and load them.
        self._compile_cache: CompileCache | None = None
        if directory := settings.compile_cache_dir:
            self._compile_cache = CompileCache(directory, label=device_label(self.device))
            self._compile_cache.configure()
            if not settings.aot_compile:  # the artifacts carry torch.compile's work, not AOT
                self._compile_cache.load()
        loaded: dict[str, LoadedModel] = {}  # by source: two names of one model share it
        self._parts: dict[str, PipelineParts] = {}
        self._placements: dict[str, Placement] = {}
        self._graphs: dict[str, BucketGraphs] = {}
        self._aot: dict[str, AotModules] = {}
        for name, source in sources.items():
            if source not in loaded:
                loaded[source] = load_model(name, source, settings, self.device)
            model = loaded[source]
            self._parts[name] = model.parts
            self._placements[name] = model.placement
            if model.graphs is not None:
                self._graphs[name] = model.graphs
            if model.aot is not None:
                self._aot[name] = model.aot
        rules = {name: parts.rules for name, parts in self._parts.items()}
        self._rules = LoadedModelRules(rules, settings.default_scheduler)
        cap = CUDA_MAX_BATCH if self.device.type == "cuda" else CPU_MAX_BATCH
        self._limits = BatchLimits(fixed=settings.max_batch_size, cap=cap, probe=self._probe)

    # -- the Engine protocol ---------------------------------------------------------------

    def shape_of(self, request: GenerationRequest) -> Shape:
        # No scheduler named: the fleet's default where the model's family takes it, else the
        # family's own; resolved by the rules the worker's validate stage checked it with.
        return self._named(shape_of(request, self._rules.scheduler_for(request)))

    def max_batch_size(self, shape: Shape) -> int:
        return self._limits.get(shape)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        cancelled: CancelCheck | None = None,
        on_step: StepObserver | None = None,
    ) -> list[GenerationOutcome]:
        """One outcome per request, in order. Requests of several shapes are run shape by shape.

        Raises only :class:`~streamgen.errors.StoreUnavailable` (an init image could not be
        read yet: transient, the whole call may be repeated) and
        :class:`~streamgen.errors.DeviceLost`; everything a request's own fields can cause is
        that request's outcome.
        """
        seeds: dict[int, int] = {}
        errors: dict[int, GenerationFailed] = {}
        adapters: dict[int, tuple[ScaledAdapter, ...]] = {}
        groups: dict[tuple[Shape, int], list[ImageRow]] = {}
        # 1. Reject what cannot run, drop what expired in the queue, read init images.
        for slot, request in enumerate(requests):
            try:
                seeds[slot] = request_seed(request)
                shape = self.shape_of(request)
                for row in self._rows(slot, request, shape, seeds[slot], cancelled):
                    groups.setdefault((shape, row.start), []).append(row)
                    adapters[slot] = row.adapters
            except GenerationFailed as error:
                errors[slot] = error
            except (StoreUnavailable, FatalError):
                raise
            except Exception as exc:
                # A field no check foresaw (the worker validates, other callers may not):
                # still this request's failure alone, never the batch's or the worker's.
                log.warning("request %r cannot run", request.request_id, exc_info=True)
                message = f"request cannot run: {type(exc).__name__}: {exc}"
                errors[slot] = not_retryable(message, InvalidRequest.code)
        # 2. Run each group in batches that fit; a failing batch is split until the culprit
        #    fails alone, so the other requests still get their images.
        results: dict[tuple[int, int], RowResult] = {}
        for (shape, _), rows in groups.items():
            for batch in chunks(rows, self.max_batch_size(shape)):
                outcome = run_isolating(
                    batch,
                    lambda b, s=shape: self._run(s, b, cancelled, on_step),  # type: ignore[misc]
                    lambda row, error: RowResult(error=error),
                    after_oom=lambda size, s=shape: self._limits.lower(s, size),  # type: ignore[misc]
                )
                for row, result in zip(batch, outcome, strict=True):
                    results[(row.slot, row.image_index)] = result
        # 3. One outcome per request: all its images, or the first error among them.
        return [
            _outcome(
                request, seeds.get(slot, 0), errors.get(slot), results, slot, self._parts
            ).with_adapters(adapters.get(slot, ()))
            for slot, request in enumerate(requests)
        ]

    # -- warm-up and introspection ---------------------------------------------------------

    def warm_up(self, shapes: Iterable[Shape]) -> dict[Shape, float]:
        """Run each shape at its largest batch and alone (with CUDA graphs: at every bucket,
        largest first); return seconds per shape. Then save the compile cache, if one is set.

        This is when ``torch.compile`` compiles (the second batch size makes the batch
        dimension dynamic, so later sizes reuse the graph), cuDNN picks its algorithms and the
        CUDA graphs are captured, so that no request pays for any of it.
        """
        took: dict[Shape, float] = {}
        for shape in map(self._for_family, map(self._named, shapes)):
            start = time.perf_counter()
            limit = self.max_batch_size(shape)
            sizes = batch_buckets(limit) if shape.model in self._graphs else {limit, 1}
            short = dataclasses.replace(shape, steps=min(shape.steps, WARM_UP_STEPS))
            for size in sorted(sizes, reverse=True):
                rows = synthetic_rows(short, size, self._parts[short.model].family)
                self._run(short, rows, None, buckets_of=shape)
            took[shape] = time.perf_counter() - start
            log.info("warmed up %s in %.1f s", shape, took[shape])
        if self._compile_cache is not None and not self.settings.aot_compile:
            self._compile_cache.save()
        return took

    def _for_family(self, shape: Shape) -> Shape:
        parts = self._parts.get(shape.model)
        return shape if parts is None else parts.rules.warm_up_shape(shape)

    def _named(self, shape: Shape) -> Shape:
        """``shape`` with the model's own name where it says ``default``."""
        name = self._model_names.get(shape.model, shape.model)
        return shape if name == shape.model else dataclasses.replace(shape, model=name)

    def graph_count(self) -> int:
        """CUDA graphs captured so far, over all models (0 without ``engine.cuda_graphs``)."""
        return sum(g.count for g in {id(g): g for g in self._graphs.values()}.values())

    def aot_packages(self) -> dict[str, int]:
        """Packages compiled and loaded so far (``engine.aot_compile``), over all models."""
        unique = {id(a): a for a in self._aot.values()}.values()
        return {
            "compiled": sum(a.compiled for a in unique),
            "loaded": sum(a.loaded for a in unique),
        }

    def adapter_stats(self) -> AdapterStats:
        """LoRA adapters loaded, cached and run without a fast path so far."""
        return self._inputs.adapter_stats()

    def model_rules(self) -> LoadedModelRules:
        """What each loaded model can honour: the worker's validate stage applies it."""
        return self._rules

    def parts(self, model: str) -> PipelineParts:
        return self._parts[model]

    def placement(self, model: str) -> Placement:
        return self._placements[model]

    # -- one batch (streamgen.engine.stages) ----------------------------------------------

    def _run(
        self,
        shape: Shape,
        rows: Sequence[ImageRow],
        cancelled: CancelCheck | None,
        on_step: StepObserver | None = None,
        *,
        buckets_of: Shape | None = None,
    ) -> list[RowResult]:
        return run_batch(
            self._parts[shape.model],
            self._placements[shape.model],
            shape,
            rows,
            runners=lambda: self._runners(buckets_of or shape, rows),
            device=self.device,
            dropped_reason=lambda request: self._dropped_reason(request, cancelled),
            on_step=on_step,
        )

    def _runners(
        self, shape: Shape, batch: Sequence[ImageRow]
    ) -> tuple[NoisePredictor, Decoder | None]:
        """Eager denoiser and VAE, their AOT packages, or their CUDA graphs over the buckets of
        ``shape``. A batch with adapters runs eagerly: their hooks are Python."""
        parts = self._parts[shape.model]
        if any(row.adapters for row in batch):
            fast = {
                "engine.compile": self.settings.compile,
                "engine.cuda_graphs": shape.model in self._graphs,
                "engine.aot_compile": shape.model in self._aot,
            }
            self._inputs.ran_eagerly(shape.model, [name for name, on in fast.items() if on])
            return parts.family.noise_predictor(Uncompiled(parts.denoiser)), None
        rows = len(batch)
        graphs = self._graphs.get(shape.model)
        if graphs is None:
            aot = self._aot.get(shape.model)
            if aot is not None:
                return aot.guided, aot.decode
            return eager_noise(parts), None
        # While the limit is being probed it is not known yet: the probe's sizes are powers of
        # two up to the cap, which are buckets of any limit it can find.
        limit = self._limits.known(shape) or self._limits.cap
        buckets = batch_buckets(max(limit, rows))
        return graphs.noise_predictor(buckets), graphs.decoder(buckets)

    def _probe(self, key: Hashable, size: int) -> None:
        assert isinstance(key, Shape)
        short = dataclasses.replace(key, steps=min(key.steps, WARM_UP_STEPS))
        rows = synthetic_rows(short, size, self._parts[key.model].family)
        self._run(short, rows, None, buckets_of=key)

    # -- per-request checks ----------------------------------------------------------------

    def _dropped_reason(
        self, request: GenerationRequest, cancelled: CancelCheck | None
    ) -> GenerationFailed | None:
        expired = deadline_expired(request, self._clock(), stage="generate")
        if expired is not None:
            return expired
        if cancelled is not None and cancelled(request):
            return RequestCancelled("request was cancelled")
        return None

    def _rows(
        self,
        slot: int,
        request: GenerationRequest,
        shape: Shape,
        seed: int,
        cancelled: CancelCheck | None,
    ) -> list[ImageRow]:
        """The request's image rows, or GenerationFailed saying why it must not run."""
        dropped = self._dropped_reason(request, cancelled)
        error = reject_reason(request, shape, self._parts, dropped)
        if error is not None:
            raise error
        parts = self._parts[shape.model]
        adapters = self._inputs.adapters(request, parts)
        pixels = self._inputs.init_image(request) if request.task == "img2img" else None
        return expand_rows(slot, request, seed, pixels, parts.family, adapters)


def _outcome(
    request: GenerationRequest,
    seed: int,
    error: GenerationFailed | None,
    results: dict[tuple[int, int], RowResult],
    slot: int,
    models: dict[str, PipelineParts],
) -> GenerationOutcome:
    # The result records the family and dtype that ran it; an unvalidated model may be anything.
    parts = models.get(request.model) if isinstance(request.model, str) else None
    family = "" if parts is None else parts.rules.label
    dtype = "" if parts is None else str(parts.dtype).removeprefix("torch.")
    if error is not None:
        return GenerationOutcome(request, seed, error=error, family=family, dtype=dtype)
    rows = [results[(slot, i)] for i in range(request.num_images)]
    failed = next((r.error for r in rows if r.error is not None), None)
    return GenerationOutcome(
        request=request,
        seed=seed,
        images=() if failed else tuple(r.image for r in rows if r.image is not None),
        error=failed,
        gpu_seconds=max(r.seconds for r in rows),
        batch_size=max(r.batch_size for r in rows),
        family=family,
        dtype=dtype,
    )
