"""CUDA graphs (``engine.cuda_graphs``): the guided denoiser step and the VAE decode, per bucket.

At small batches a denoising step is launch-bound: the GPU waits on Python and the launch of
about a thousand kernels per UNet call (batch 1 took 0.89-1.32 s per image eager on an H200).
A CUDA graph replays all of them with one launch. A graph replays fixed shapes, so a batch is
padded up to its bucket (``buckets``) and each bucket is captured once per latent shape, on
first use or during warm-up. Every graph of one model shares one memory pool: they never run
at the same time, and each output is copied out before anything else is replayed.

What is captured and what is not, and why:

- captured: the family's noise predictor (for the UNets ``unet(cat([x, x]), t, ...)`` and the
  classifier-free-guidance combine; for FLUX the packing, the transformer with its guidance
  input, and the unpacking), reading the timestep, latents, conditioning tensors and guidance
  values from static input tensors; and ``vae.decode``;
- not captured: the scheduler step and ``scale_model_input``. They read their sigmas as CPU
  scalars that change every step (a graph would freeze the first step's values) and cost a few
  dozen element-wise kernels; none of them waits on the GPU, so no step costs a host sync.
- not captured: the text encoder, run once per batch (not once per step).

``capture=False`` runs the same padded static-buffer path without a graph, so the padding can
be tested on a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from streamgen.engine.buckets import PaddingPlan
from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families import NoisePredictor, PipelineParts

__all__ = [
    "AOT_WARM_UP_RUNS",
    "WARM_UP_RUNS",
    "BucketGraphs",
    "NoisePredictor",
    "eager_noise",
]

log = logging.getLogger(__name__)

# Runs before capture, on a side stream: cuDNN's algorithm search, lazy initialisation and
# torch.compile's compilation must not happen inside a capture (they would fail or be frozen).
# Two for eager and torch.compile'd modules; one for AOTInductor packages, which compile
# nothing when called, so their first call does all of it (cuBLAS handles, cuDNN's plans and
# attention kernels). On an H200, with the six buckets of batch 32, a warm start's warm-up
# went from 7.1 s (mean of three starts) to 6.1 s (two starts) with one run.
WARM_UP_RUNS = 2
AOT_WARM_UP_RUNS = 1


def eager_noise(parts: PipelineParts) -> NoisePredictor:
    """The family's plain denoiser call, guidance included (what a CUDA graph captures,
    unpadded)."""
    return parts.family.noise_predictor(parts.denoiser)


@dataclass
class _Captured:
    """One graph and its static tensors: inputs are copied in, the output copied out."""

    inputs: dict[str, torch.Tensor]
    run: Callable[[], torch.Tensor]
    output: torch.Tensor | None = None
    # The conditioning last copied in (kept alive so that ``is`` cannot match a new object).
    loaded: list[Any] = field(default_factory=list)


class BucketGraphs:
    """The graphs of one loaded model, keyed by what they capture, tensor shapes and bucket."""

    def __init__(
        self,
        parts: PipelineParts,
        device: torch.device,
        *,
        capture: bool,
        predict: NoisePredictor | None = None,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        warm_up_runs: int = WARM_UP_RUNS,
    ) -> None:
        """``predict`` and ``decode`` are what gets captured: by default the family's step
        and ``vae.decode`` (compiled or not), or ``engine.aot_compile``'s packages (then
        ``warm_up_runs`` may be ``AOT_WARM_UP_RUNS``)."""
        self._parts = parts
        self._device = device
        self._capture = capture
        self._warm_up_runs = warm_up_runs
        self._predict = predict or eager_noise(parts)
        self._decode = decode or _vae_decode(parts.vae)
        self._pool = torch.cuda.graph_pool_handle() if capture else None
        self._graphs: dict[tuple[Any, ...], _Captured] = {}

    @property
    def count(self) -> int:
        return len(self._graphs)

    # -- the guided denoiser step --------------------------------------------------------------

    def noise_predictor(self, buckets: Sequence[int]) -> NoisePredictor:
        def predict(
            latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
        ) -> torch.Tensor:
            plan = PaddingPlan.for_rows(latents.shape[0], buckets)
            return self._noise(plan, latents, t, cond, guidance)

        return predict

    def _noise(
        self,
        plan: PaddingPlan,
        latents: torch.Tensor,
        t: torch.Tensor,
        cond: Conditioning,
        guidance: torch.Tensor,
    ) -> torch.Tensor:
        key = (
            "denoiser",
            plan.bucket,
            tuple(latents.shape[1:]),
            latents.dtype,
            t.dtype,
            cond.copies,
            cond.signature(),
        )
        graph = self._graphs.get(key)
        fresh = graph is None
        if graph is None:
            graph = self._new_step(plan.bucket, latents, t, cond, guidance)
        x = graph.inputs
        _load_rows(x["latents"], latents, plan)
        x["t"].copy_(t)
        if not graph.loaded or graph.loaded[0] is not cond or graph.loaded[1] is not guidance:
            # Conditioning and guidance stay the same for every step of a batch. Each copy
            # (with CFG: the negative and the positive half) is padded on its own.
            rows = plan.rows
            for name, source in cond.tensors.items():
                x[name].zero_()
                for copy in range(cond.copies):
                    x[name][copy * plan.bucket : copy * plan.bucket + rows].copy_(
                        source[copy * rows : (copy + 1) * rows]
                    )
            _load_rows(x["guidance"], guidance, plan)
            graph.loaded = [cond, guidance]
        if fresh:
            self._finish(key, graph)
        return graph.run()[: plan.rows].clone()

    def _new_step(
        self,
        bucket: int,
        latents: torch.Tensor,
        t: torch.Tensor,
        cond: Conditioning,
        guidance: torch.Tensor,
    ) -> _Captured:
        def static(like: torch.Tensor, rows: int) -> torch.Tensor:
            return torch.zeros((rows, *like.shape[1:]), dtype=like.dtype, device=like.device)

        names = tuple(cond.tensors)
        inputs = {
            "latents": static(latents, bucket),
            "t": torch.zeros_like(t),
            "guidance": static(guidance, bucket),
            **{name: static(cond[name], cond.copies * bucket) for name in names},
        }
        predict = self._predict
        static_cond = Conditioning({name: inputs[name] for name in names}, cond.copies)

        def step() -> torch.Tensor:
            return predict(inputs["latents"], inputs["t"], static_cond, inputs["guidance"])

        return _Captured(inputs=inputs, run=step)

    # -- the VAE decode ----------------------------------------------------------------------

    def decoder(self, buckets: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``vae.decode`` of scaled latents, padded to the bucket."""

        def decode(latents: torch.Tensor) -> torch.Tensor:
            plan = PaddingPlan.for_rows(latents.shape[0], buckets)
            key = ("vae", plan.bucket, tuple(latents.shape[1:]), latents.dtype)
            graph = self._graphs.get(key)
            fresh = graph is None
            if graph is None:
                inputs = {
                    "latents": torch.zeros(
                        (plan.bucket, *latents.shape[1:]),
                        dtype=latents.dtype,
                        device=latents.device,
                    )
                }
                vae_decode = self._decode

                def run() -> torch.Tensor:
                    return vae_decode(inputs["latents"])

                graph = _Captured(inputs=inputs, run=run)
            _load_rows(graph.inputs["latents"], latents, plan)
            if fresh:
                self._finish(key, graph)
            return graph.run()[: plan.rows].clone()

        return decode

    # -- capture ---------------------------------------------------------------------------

    def _finish(self, key: tuple[Any, ...], graph: _Captured) -> None:
        """Warm ``graph.run`` up on its (now loaded) inputs, then capture it if on CUDA."""
        eager = graph.run
        if not self._capture:
            self._graphs[key] = graph
            return
        side = torch.cuda.Stream(self._device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self._warm_up_runs):
                eager()
        torch.cuda.current_stream(self._device).wait_stream(side)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(cuda_graph, pool=self._pool):
            graph.output = eager()
        output = graph.output

        def replay() -> torch.Tensor:
            cuda_graph.replay()
            return output

        graph.run = replay
        self._graphs[key] = graph
        log.info("captured CUDA graph %s (%d graphs)", key[:3], len(self._graphs))


def _vae_decode(vae: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    def decode(latents: torch.Tensor) -> torch.Tensor:
        images: torch.Tensor = vae.decode(latents, return_dict=False)[0]
        return images

    return decode


def _load_rows(static: torch.Tensor, rows: torch.Tensor, plan: PaddingPlan) -> None:
    """Real rows first, filler rows zero (their outputs are dropped; zero keeps them finite)."""
    static[: plan.rows].copy_(rows)
    if plan.filler:
        static[plan.rows :].zero_()
