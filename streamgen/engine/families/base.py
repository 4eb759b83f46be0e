"""The model-family seam: one interface that says everything that differs between families.

The engine (loading, stages, the denoising loop, CUDA graphs, AOT packages, knobs, warm-up)
calls these methods and never asks which family it runs. A family answers, in the order a
diffusers ``__call__`` reads:

1. what to load and in which dtype (``cuda_dtype``; ``engine.dtype`` overrides): ``parts``;
2. the limits a request must keep (size multiple, steps, guidance, negative prompt,
   img2img, schedulers): ``rules``, pure and checked before any GPU work;
3. prompts to conditioning (CLIP, T5, pooled embeddings, sequence lengths): ``encode``;
4. the latent shape drawn from each row's generator: ``latent_shape``; for img2img, where
   ``strength`` starts in the schedule, how init latents come from the VAE's posterior and how
   they are noised to that first timestep (DDPM by default; flow matching in
   ``flow_matching``): ``img2img_start``, ``init_latents``, ``noised``;
5. the scheduler and its timesteps (FLUX's resolution-dependent shift): ``make_scheduler``,
   ``set_timesteps``;
6. the denoiser call, guidance included (CFG combine or a distilled embedding), that eager
   runs, CUDA graphs capture and AOT packages compile: ``noise_predictor``;
7. decoding: the VAE's input from the final latents: by default its own ``scaling_factor`` and
   ``shift_factor``, on latents kept in the VAE's layout (packing, if any, happens inside 6);
   a family whose latents are normalised otherwise (FLUX.2's batch-norm statistics over 2x2
   patches) says how: ``vae_input``.

See docs/decisions.md ("Model families") for why the seam sits here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from streamgen.engine import img2img
from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families.fused_projections import drop_unfused_projections
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.schedulers import SchedulerTable, make_scheduler
from streamgen.errors import ConfigError

__all__ = ["ModelFamily", "NoisePredictor", "PipelineParts"]

# (latents of B rows, timestep, conditioning, B guidance values) -> the model output the
# scheduler steps with, guidance already applied. Eager, or replayed from a CUDA graph padded to
# a bucket, or an AOT package: the denoising loop is the same either way.
NoisePredictor = Callable[[torch.Tensor, torch.Tensor, Conditioning, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PipelineParts:
    """The components of one loaded pipeline, named for what they do, whatever the family."""

    name: str
    family: ModelFamily
    rules: FamilyRules
    pipeline: Any
    denoiser: Any  # the network run every step: a UNet, a transformer
    vae: Any
    text_encoders: tuple[Any, ...]
    tokenizers: tuple[Any, ...]
    scheduler_config: Mapping[str, Any]
    dtype: torch.dtype
    # Some VAEs overflow in fp16 (real SDXL checkpoints'), so the family may keep it in float32.
    vae_dtype: torch.dtype

    @property
    def vae_scale_factor(self) -> int:
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def modules(self) -> tuple[Any, ...]:
        """Every module with weights, for placement and offload."""
        return (self.denoiser, self.vae, *self.text_encoders)


class ModelFamily(ABC):
    """One family of diffusion models: a stateless object, one instance per family."""

    name: ClassVar[str]
    # diffusers pipeline classes (``model_index.json``'s ``_class_name``) this family serves.
    pipeline_classes: ClassVar[tuple[str, ...]]
    # ``engine.dtype=auto`` on CUDA: what the family is stable in, or what its authors publish.
    cuda_dtype: ClassVar[torch.dtype]

    # -- 1. loading --------------------------------------------------------------------------

    @abstractmethod
    def parts(self, name: str, pipeline: Any, dtype: torch.dtype) -> PipelineParts:
        """The components the engine drives, from a pipeline loaded on the CPU in ``dtype``."""

    # -- 2. limits -----------------------------------------------------------------------------

    @abstractmethod
    def rules(self, pipeline: Any) -> FamilyRules:
        """The limits of these weights (a variant may be told by its config, e.g. FLUX.1's
        guidance embedding)."""

    # Names a model mapping may add to weights (``NAME=PATH#PRESET``): what a checkpoint cannot
    # say about itself, such as a distilled model that ships its base model's configs.
    presets: ClassVar[tuple[str, ...]] = ()

    def preset_rules(self, rules: FamilyRules, preset: str, *, setting: str) -> FamilyRules:
        """``rules`` for weights the model mapping names ``preset``; ConfigError naming
        ``setting`` where this family has no such preset. A family with presets overrides it."""
        if preset not in self.presets:
            known = ", ".join(self.presets) or "none"
            raise ConfigError(
                setting, f"#{preset}: {self.name} has no such preset (presets: {known})"
            )
        return rules

    # -- 3. conditioning -------------------------------------------------------------------------

    @abstractmethod
    def encode(
        self,
        parts: PipelineParts,
        prompts: Sequence[str],
        negatives: Sequence[str],
        *,
        width: int,
        height: int,
        device: torch.device,
    ) -> Conditioning:
        """Conditioning for one batch, one entry per image in ``prompts`` and ``negatives``."""

    # -- 4. latents --------------------------------------------------------------------------

    def latent_shape(self, parts: PipelineParts, width: int, height: int) -> tuple[int, int, int]:
        """(channels, height, width) of one row's starting noise, in the VAE's layout."""
        factor = parts.vae_scale_factor
        return (int(parts.vae.config.latent_channels), height // factor, width // factor)

    # img2img (where ``rules`` allow it). The defaults are the UNet families' DDPM way; they
    # keep the posterior's mean where StableDiffusionImg2ImgPipeline samples it, so that an
    # init image gives the same latents whatever the seed.

    def img2img_start(self, steps: int, strength: float) -> int:
        """Index of the first of ``steps`` timesteps an img2img row of ``strength`` runs."""
        return img2img.start_step(steps, strength)

    def init_latents(self, posterior: Any, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Unscaled latents of a batch of init images from the VAE's ``latent_dist``; any
        sample is drawn from each row's generator before its starting noise."""
        mean: torch.Tensor = posterior.mean
        return mean

    def noised(
        self, scheduler: Any, clean: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor
    ) -> torch.Tensor:
        """Init latents noised to ``timestep`` (one per row), the first the batch runs."""
        noisy: torch.Tensor = scheduler.add_noise(clean, noise, timestep)
        return noisy

    # -- 5. scheduler and timesteps -------------------------------------------------------------

    scheduler_table: ClassVar[SchedulerTable]

    def make_scheduler(self, name: str, parts: PipelineParts) -> Any:
        """A fresh scheduler (they hold per-run state, so each batch gets its own)."""
        return make_scheduler(name, parts.scheduler_config, self.scheduler_table)

    def set_timesteps(
        self, scheduler: Any, steps: int, latent_shape: Sequence[int], device: torch.device
    ) -> None:
        scheduler.set_timesteps(steps, device=device)

    # -- 6. the denoiser call --------------------------------------------------------------

    @abstractmethod
    def noise_predictor(self, denoiser: Any) -> NoisePredictor:
        """The plain call of ``denoiser`` with guidance applied: what a CUDA graph captures
        (padded) and an AOT package compiles; it must read only its tensor arguments."""

    # -- 7. decoding ---------------------------------------------------------------------------

    def vae_input(self, parts: PipelineParts, latents: torch.Tensor) -> torch.Tensor:
        """What ``vae.decode`` takes for these final latents (what a decoder graph captures)."""
        config = parts.vae.config
        scaled: torch.Tensor = latents.to(parts.vae_dtype) / config.scaling_factor
        if getattr(config, "shift_factor", None):
            scaled = scaled + config.shift_factor
        return scaled

    # -- knobs ---------------------------------------------------------------------------------

    # ``engine.fp8_linear``: name prefixes of the denoiser's repeated blocks, whose linear layers
    # may run as FP8 products (``streamgen.engine.fp8``); what lies outside them (embedders, the
    # final norm and projection) stays in the model's dtype. Empty: the family does not offer it.
    fp8_blocks: ClassVar[tuple[str, ...]] = ()

    def fuse_qkv(self, parts: PipelineParts) -> None:
        """``engine.fuse_qkv``: each attention's query, key and value projections as one product
        (key and value for cross-attention), in the denoiser and the VAE, without changing an
        image (tests/unit/engine/test_fuse_qkv.py holds every family to it)."""
        for module in (parts.denoiser, parts.vae):
            module.fuse_qkv_projections()
            drop_unfused_projections(module)

    def use_attention(self, parts: PipelineParts, kind: str) -> None:
        """``engine.attention``: ``sdpa`` (torch's kernel choice) or ``xformers``."""
        from diffusers.models import attention_processor

        sdpa: Any = attention_processor.AttnProcessor2_0  # untyped in diffusers

        for module in (parts.denoiser, parts.vae):
            if kind == "xformers":
                module.enable_xformers_memory_efficient_attention()
            else:
                module.set_attn_processor(sdpa())
