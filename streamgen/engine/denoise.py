"""The denoising loop over a batch, one row per image, in the stages of a diffusers ``__call__``.

What lets one forward pass serve heterogeneous requests without changing any of them:

- every row has its own CPU ``torch.Generator`` (seed + image index), so its starting noise and
  any noise an ancestral scheduler adds are the same as when it runs alone;
- guidance (a CFG scale or a distilled model's guidance input) is per row: a tensor;
- the scheduler is stepped once for the whole batch: its arithmetic is element-wise per row.

The noise prediction (the family's denoiser call, guidance included) is passed in: eager, or
replayed from a CUDA graph padded to a bucket (``graphs``), or an AOT package; the loop is the
same either way.

Rows can leave the batch between steps (cancelled or expired requests); their slices of the
latents, the conditioning and the scheduler's saved history are dropped with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families import NoisePredictor
from streamgen.engine.schedulers import takes_generator

__all__ = ["DenoiseBatch", "DropCheck", "StepDone", "denoise", "initial_noise"]

# Given the original row indices still in the batch, return those to drop before the next step.
DropCheck = Callable[[Sequence[int]], set[int]]
# After each step: its index (from 0) and the original row indices that ran it.
StepDone = Callable[[int, Sequence[int]], None]


@dataclass
class DenoiseBatch:
    latents: torch.Tensor  # (B, C, h, w), already noised to the first timestep
    conditioning: Conditioning  # conditioning.copies * B rows
    guidance: torch.Tensor  # (B,)
    generators: list[torch.Generator]
    timesteps: torch.Tensor

    def select(self, keep: Sequence[int]) -> DenoiseBatch:
        index = torch.tensor(list(keep), device=self.latents.device)
        return DenoiseBatch(
            latents=self.latents[index],
            conditioning=self.conditioning.select(keep),
            guidance=self.guidance[index],
            generators=[self.generators[i] for i in keep],
            timesteps=self.timesteps,
        )


def initial_noise(
    generators: Sequence[torch.Generator],
    shape: tuple[int, int, int],
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """One noise tensor per row, each drawn from its own generator (on the CPU, then moved).

    Drawn directly in ``dtype``, as diffusers does, so a seed gives the stock pipeline's image.
    """
    rows = [torch.randn((1, *shape), generator=g, dtype=dtype) for g in generators]
    return torch.cat(rows).to(device=device)


@torch.no_grad()
def denoise(
    predict: NoisePredictor,
    scheduler: Any,
    batch: DenoiseBatch,
    *,
    drop: DropCheck,
    on_step: StepDone | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Run every timestep; return the final latents and the original rows they belong to."""
    alive = list(range(batch.latents.shape[0]))
    step_kwargs: dict[str, Any] = {}
    for step, t in enumerate(batch.timesteps):
        # 1. Drop rows whose request was cancelled or expired since the last step.
        gone = drop(alive)
        if gone:
            keep = [i for i, row in enumerate(alive) if row not in gone]
            if not keep:  # every row left: nothing to select (an empty index is a float tensor)
                return batch.latents[:0], []
            _select_scheduler_state(scheduler, keep, batch.latents.shape)
            batch = batch.select(keep)
            alive = [alive[i] for i in keep]
        # 2. Predict the noise, each row's guidance applied (with CFG: the negative and
        #    positive halves in one pass). Scaling is element-wise, so scaling B rows and then
        #    doubling them equals scaling the doubled batch. Flow-matching schedulers scale
        #    nothing and have no scale_model_input.
        latent_input = batch.latents
        if hasattr(scheduler, "scale_model_input"):
            latent_input = scheduler.scale_model_input(batch.latents, t)
        noise = predict(latent_input, t, batch.conditioning, batch.guidance)
        # 3. One scheduler step for all rows; ancestral noise still comes from each row's own
        #    generator (diffusers draws one sample per generator when given a list).
        if takes_generator(scheduler):
            step_kwargs["generator"] = batch.generators
        batch.latents = scheduler.step(noise, t, batch.latents, **step_kwargs, return_dict=False)[0]
        if on_step is not None:
            on_step(step, alive)
    return batch.latents, alive


def _select_scheduler_state(scheduler: Any, keep: Sequence[int], latent_shape: torch.Size) -> None:
    """Keep rows ``keep`` of every per-row tensor a multistep scheduler saved between steps.

    Multistep solvers (DPM++, UniPC, PNDM) remember earlier model outputs and samples; those
    are exactly the saved tensors shaped like the latents. Timestep and sigma tables are 1-D and
    never match, even when their length happens to equal the batch size.
    """

    def select(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.shape == latent_shape:
            return value[torch.tensor(list(keep), device=value.device)]
        if isinstance(value, list):
            return [select(v) for v in value]
        return value

    for name, value in list(vars(scheduler).items()):
        if isinstance(value, torch.Tensor | list):
            setattr(scheduler, name, select(value))
