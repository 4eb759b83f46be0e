"""What ``benchmarks.families`` runs: each family at its usual settings (``RUNS``), and the
runners it times side by side: stock diffusers (``stock_runner``) and the streamgen engine with
any speed knobs (``streamgen_runner``, ``knob_settings``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.flops import flops_per_image
from streamgen.configuration import load_settings
from streamgen.contracts.request import GenerationRequest
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families import FAMILIES
from streamgen.engine.knobs import FP8_CAPABILITY
from streamgen.engine.schedulers import make_scheduler
from streamgen.settings import EngineSettings

__all__ = [
    "FP8",
    "MODEL",
    "RUNS",
    "FamilyRun",
    "Runner",
    "knob_settings",
    "runner_name",
    "runners_for",
    "stock_runner",
    "streamgen_runner",
]

MODEL = "bench"
FP8 = "streamgen+fp8"
# One loaded runner: requests in, one image each out.
Runner = Callable[[list[GenerationRequest]], list[Any]]


@dataclass(frozen=True)
class FamilyRun:
    """A family at its usual settings: MLPerf's for SDXL, the model cards' for FLUX.1."""

    arch: str
    tiny: str
    family: str
    size: int
    steps: int
    guidance: float
    scheduler: str
    stock_kwargs: tuple[tuple[str, Any], ...] = ()
    # The untimed warm-up's steps: few, but no fewer than the family accepts ([dev]: 28).
    warm_up_steps: int = 2
    # What streamgen's model mapping adds to the weights (NAME=PATH#PRESET), e.g. large-turbo:
    # a distilled checkpoint with its base model's configs.
    preset: str = ""


RUNS = {
    "flux-dev": FamilyRun("flux-dev", "tiny-flux-dev", "flux", 1024, 28, 3.5, "euler",
                          (("max_sequence_length", 512),), warm_up_steps=28),
    "flux-schnell": FamilyRun("flux-schnell", "tiny-flux-schnell", "flux", 1024, 4, 0.0,
                              "euler", (("max_sequence_length", 256),)),
    "sdxl": FamilyRun("sdxl", "tiny-sdxl", "sdxl", 1024, 20, 8.0, "euler"),
    "sd15": FamilyRun("sd15", "tiny", "sd15", 512, 30, 7.5, "dpmpp_2m"),
    # SD3.5's model cards: Large 28 steps at CFG 3.5, Medium 40 at 4.5, Large Turbo 4 without.
    "sd3.5-large": FamilyRun("sd3.5-large", "tiny-sd3-large", "sd3", 1024, 28, 3.5, "euler",
                             (("max_sequence_length", 256),)),
    "sd3.5-medium": FamilyRun("sd3.5-medium", "tiny-sd3-medium", "sd3", 1024, 40, 4.5, "euler",
                              (("max_sequence_length", 256),)),
    "sd3.5-large-turbo": FamilyRun("sd3.5-large", "tiny-sd3-large", "sd3", 1024, 4, 0.0, "euler",
                                   (("max_sequence_length", 256),), preset="large-turbo"),
    # FLUX.2 [klein] (distilled): 4 steps, no guidance, 512 prompt tokens (Flux2KleinPipeline).
    "flux2-klein-4b": FamilyRun("flux2-klein-4b", "tiny-flux2-klein", "flux2", 1024, 4, 0.0,
                                "euler", (("max_sequence_length", 512),), warm_up_steps=4),
    "flux2-klein-9b": FamilyRun("flux2-klein-9b", "tiny-flux2-klein", "flux2", 1024, 4, 0.0,
                                "euler", (("max_sequence_length", 512),), warm_up_steps=4),
}  # fmt: skip


def runners_for(
    run: FamilyRun,
    directory: Path,
    knob_sets: Sequence[Sequence[str]],
    report: dict[str, Any],
    max_batch: int,
) -> dict[str, Callable[[], Runner]]:
    """Every runner this machine can time, by name, each loaded only when called: stock and
    streamgen eager everywhere; on CUDA stock compiled, streamgen with each knob set
    (``streamgen+`` the knobs joined by ``+``) and, where the family and GPU offer it, FP8 on
    the first set. The eager streamgen runner counts the model's FLOPs into ``report``."""
    source = f"{directory}#{run.preset}" if run.preset else str(directory)
    runners: dict[str, Callable[[], Runner]] = {
        "diffusers": lambda: stock_runner(directory, run, compiled=False),
        "streamgen": lambda: streamgen_runner(source, (), report, max_batch),
    }
    if not torch.cuda.is_available():
        return runners
    runners["diffusers+compile"] = lambda: stock_runner(directory, run, compiled=True)
    for knobs in knob_sets:
        runners[runner_name(knobs)] = lambda k=knobs: streamgen_runner(source, k, None, max_batch)  # type: ignore[misc]
    if FAMILIES[run.family].fp8_blocks and torch.cuda.get_device_capability() >= FP8_CAPABILITY:
        fp8 = [*knob_sets[0], "fp8_linear"]
        runners[FP8] = lambda: streamgen_runner(source, fp8, None, max_batch)
    return runners


def runner_name(knobs: Sequence[str]) -> str:
    """The streamgen runner with these knobs, as ``--runners`` names it."""
    return "+".join(["streamgen", *knobs])


def knob_settings(knobs: Sequence[str], **fields: Any) -> EngineSettings:
    """Engine settings with ``knobs`` (``--best-knobs``): each ``NAME`` turns ``engine.NAME``
    on, ``NAME=VALUE`` sets it (``compile_mode=max-autotune``). They are read by the worker's
    own settings loader, so a misspelt knob or a bad value is a ConfigError naming the setting
    before any model loads; ``fields`` are set as given (models, batch limit)."""
    overrides = {}
    for knob in knobs:
        name, sep, value = knob.partition("=")
        overrides[f"engine.{name.strip()}"] = value.strip() if sep else "true"
    engine = load_settings(overrides, env={}).engine  # env={}: the machine's STREAMGEN_* unread
    return dataclasses.replace(engine, **fields)


def streamgen_runner(
    source: str, knobs: Sequence[str], report: dict[str, Any] | None, max_batch: int
) -> Runner:
    # The largest batch timed, as stock runs it: no probe for what fits (the worker's first
    # sight of a shape), and CUDA graphs captured only for the batch sizes timed.
    settings = knob_settings(knobs, models={MODEL: source}, max_batch_size=max_batch)
    engine = DiffusionEngine(settings)
    if report is not None:  # FLOPs of the model, counted once, eagerly
        first = engine.parts(MODEL)
        size = report["settings"]["size"]
        counted = flops_per_image(engine, MODEL, size, report["settings"]["steps"])
        report["tflop_per_image"] = counted["image"] / 1e12
        report["tflop_per_step"] = counted["step"] / 1e12
        report["dtype"] = str(first.dtype)

    def call(requests: list[GenerationRequest]) -> list[Any]:
        outcomes = engine.generate(requests)
        failed = [o.error for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"streamgen failed: {failed[0]}")
        return [o.images[0] for o in outcomes]

    return call


def stock_runner(directory: Path, run: FamilyRun, *, compiled: bool) -> Runner:
    import diffusers

    cuda = torch.cuda.is_available()
    dtype = FAMILIES[run.family].cuda_dtype if cuda else torch.float32
    loader: Any = diffusers.DiffusionPipeline
    pipe = loader.from_pretrained(directory, dtype=dtype, local_files_only=True)
    table = FAMILIES[run.family].scheduler_table
    pipe.scheduler = make_scheduler(run.scheduler, dict(pipe.scheduler.config), table)
    pipe.to("cuda" if cuda else "cpu")
    pipe.set_progress_bar_config(disable=True)
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    if compiled:
        denoiser.compile()  # diffusers' recipe: torch.compile on the denoiser, nothing else

    kwargs = dict(run.stock_kwargs)
    if "max_sequence_length" in kwargs:  # as streamgen: capped by what the tokenizer holds
        # SD3's T5 is the third tokenizer, FLUX.1's the second; FLUX.2's Qwen3 one the only one.
        t5 = getattr(pipe, "tokenizer_3", None) or getattr(pipe, "tokenizer_2", None)
        t5 = t5 or pipe.tokenizer
        kwargs["max_sequence_length"] = min(kwargs["max_sequence_length"], t5.model_max_length)

    def call(requests: list[GenerationRequest]) -> list[Any]:
        first = requests[0]
        images: list[Any] = pipe(
            prompt=[r.prompt for r in requests],
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance_scale,
            generator=[torch.Generator("cpu").manual_seed(r.seed or 0) for r in requests],
            **kwargs,
        ).images
        return images

    return call
