"""img2img for the flow-matching families (FLUX.1, SD3.5), as their stock pipelines do it.

``FluxImg2ImgPipeline`` and ``StableDiffusion3Img2ImgPipeline`` differ from the DDPM way in
three places, each answered here so that a seed gives their image:

- the start step truncates ``steps - steps * strength`` (``flow_start_step``);
- init latents are a sample of the VAE's posterior, drawn from each row's generator before the
  row's starting noise (``retrieve_latents`` in sample mode, one image per generator);
- noising interpolates towards the noise at the first sigma (``scheduler.scale_noise``:
  ``sigma * noise + (1 - sigma) * latents``) where DDPM scales by its alphas (``add_noise``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch

from streamgen.engine import img2img
from streamgen.engine.families.transformer import FlowTransformer

__all__ = ["FlowMatchingImg2Img"]


class FlowMatchingImg2Img(FlowTransformer):
    """A flow-matching transformer whose img2img follows its stock img2img pipeline."""

    def img2img_start(self, steps: int, strength: float) -> int:
        return img2img.flow_start_step(steps, strength)

    def init_latents(self, posterior: Any, generators: Sequence[torch.Generator]) -> torch.Tensor:
        # diffusers' sampler draws one row per generator, on the generator's device, in the
        # posterior's dtype: what each row's separate encode draws in the stock pipeline.
        sample: torch.Tensor = posterior.sample(list(generators))
        return sample

    def noised(
        self, scheduler: Any, clean: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor
    ) -> torch.Tensor:
        # sigma * noise + (1 - sigma) * clean, at the sigma of the scheduler's begin index.
        return cast(torch.Tensor, scheduler.scale_noise(clean, timestep, noise))
