"""Speed knobs (each an ``engine.*`` setting) applied to a loaded pipeline, and CPU offload.

None of them may change an image beyond floating-point noise (the GPU tests compare outputs
with every knob against the plain run), except ``fp8_linear``: opt-in, it trades a measured
drift (tests/gpu/test_fp8_gpu.py bounds it) for speed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from streamgen.engine.aot import COMPILE_MODES, check_aot_compile
from streamgen.engine.families import PipelineParts
from streamgen.engine.fp8 import swap_fp8_linears
from streamgen.engine.loading import pipeline_family
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings

__all__ = ["Placement", "apply_knobs", "check_fp8_families", "check_knobs"]

log = logging.getLogger(__name__)


def check_knobs(settings: EngineSettings, device: torch.device) -> None:
    """Reject combinations that cannot work, naming the setting, before any model loads."""
    if settings.attention == "xformers":
        if importlib.util.find_spec("xformers") is None:
            raise ConfigError(
                "engine.attention",
                "xformers is not installed (pip install 'streamgen[gpu]'), or use sdpa",
            )
        if device.type != "cuda":
            raise ConfigError("engine.attention", "xformers needs a CUDA device; use sdpa")
        if settings.fuse_qkv:
            raise ConfigError("engine.fuse_qkv", "fused QKV projections need attention=sdpa")
    if settings.compile and settings.cpu_offload:
        raise ConfigError("engine.compile", "cannot compile modules that move between devices")
    if settings.compile_mode != "default" and not (settings.compile or settings.aot_compile):
        raise ConfigError(
            "engine.compile_mode",
            f"{settings.compile_mode} tunes what engine.compile or engine.aot_compile compiles; "
            "turn one of them on, or leave it default",
        )
    check_aot_compile(settings)
    if settings.cuda_graphs:
        if device.type != "cuda":
            raise ConfigError("engine.cuda_graphs", "CUDA graphs need a CUDA device")
        if settings.cpu_offload:
            raise ConfigError(
                "engine.cuda_graphs", "a graph cannot replay modules that move between devices"
            )
    if settings.fp8_linear:
        _check_fp8(settings, device)


# FP8 tensor cores: Ada (8.9) and Hopper (9.0) on; _scaled_mm refuses older GPUs.
FP8_CAPABILITY = (8, 9)


def _check_fp8(settings: EngineSettings, device: torch.device) -> None:
    if device.type != "cuda":
        raise ConfigError("engine.fp8_linear", "FP8 products need a CUDA device")
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_CAPABILITY:
        raise ConfigError(
            "engine.fp8_linear",
            f"FP8 products need compute capability 8.9 or more (Ada, Hopper); "
            f"{torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}",
        )
    # Rowwise-scaled FP8 products write bf16 only: the transformer families' own dtype.
    if settings.dtype not in {"auto", "bfloat16"}:
        raise ConfigError("engine.fp8_linear", f"needs engine.dtype bfloat16, not {settings.dtype}")
    check_fp8_families(settings.models)


def check_fp8_families(models: Mapping[str, str]) -> None:
    """Every model of ``engine.models`` belongs to a family that offers FP8, read from its
    ``model_index.json`` alone: no weights load before the refusal."""
    for name, source in models.items():
        family = pipeline_family(name, source)
        if not family.fp8_blocks:
            raise ConfigError(
                "engine.fp8_linear",
                f"model {name} is {family.name}, which does not offer FP8 (the transformer "
                "families flux, flux2 and sd3 do); turn it off or serve that model elsewhere",
            )


def apply_knobs(parts: PipelineParts, settings: EngineSettings, device: torch.device) -> None:
    modules = (parts.denoiser, parts.vae)
    parts.family.use_attention(parts, settings.attention)
    if settings.fuse_qkv:
        parts.family.fuse_qkv(parts)
    if settings.channels_last:
        for module in modules:
            module.to(memory_format=torch.channels_last)
    if settings.fp8_linear:
        # After fuse_qkv (a fused projection is one larger FP8 product), before compile.
        swapped = swap_fp8_linears(parts.denoiser, parts.family.fp8_blocks)
        log.info("fp8_linear: %d linear layers of %s's denoiser run in FP8", swapped, parts.name)
    if settings.vae_slicing:
        # Decoding image by image bounds the decoder's activation memory at large batches.
        parts.vae.enable_slicing()
    if device.type == "cuda":
        # cuDNN times its algorithms per input shape once per process, or takes its heuristic's.
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if settings.compile:
        import torch._inductor.config as inductor

        # 1x1 convolutions as matrix products: inductor can fuse them with their neighbours.
        inductor.conv_1x1_as_mm = True
        options = COMPILE_MODES[settings.compile_mode] or None  # None: torch's defaults
        parts.denoiser.compile(options=options)
        parts.vae.decoder.compile(options=options)
    log.info(
        "speed knobs: attention=%s fuse_qkv=%s channels_last=%s vae_slicing=%s compile=%s "
        "compile_mode=%s aot_compile=%s cuda_graphs=%s cudnn_benchmark=%s fp8_linear=%s",
        settings.attention,
        settings.fuse_qkv,
        settings.channels_last,
        settings.vae_slicing,
        settings.compile,
        settings.compile_mode,
        settings.aot_compile,
        settings.cuda_graphs,
        settings.cudnn_benchmark,
        settings.fp8_linear,
    )


class Placement:
    """Where each module runs. With CPU offload, a module visits the GPU only while it is used.

    Offload trades speed for memory: text encoders, denoiser and VAE never share the GPU.
    """

    def __init__(self, parts: PipelineParts, device: torch.device, *, offload: bool) -> None:
        self.device = device
        self._offload = offload and device.type == "cuda"
        if not self._offload:
            for module in parts.modules:
                module.to(device)

    @contextlib.contextmanager
    def on_device(self, *modules: Any) -> Iterator[None]:
        if not self._offload:
            yield
            return
        for module in modules:
            module.to(self.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")
