"""FLOPs of one image through any family: text encoding, steps x one denoiser call (guidance
included: a CFG family's call runs two rows per image), one VAE decode. Counted by torch's
FlopCounterMode on the eager modules (matrix products and attention; element-wise work is
not counted, so TFLOP/s derived from it is a lower bound on what the GPU does)."""

from __future__ import annotations

import torch

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.graphs import eager_noise

__all__ = ["flops_per_image"]


def flops_per_image(engine: DiffusionEngine, model: str, size: int, steps: int) -> dict[str, float]:
    """{"text", "step", "decode", "image"}: FLOPs at batch 1 and ``size`` x ``size``."""
    from torch.utils.flop_counter import FlopCounterMode

    parts, place, device = engine.parts(model), engine.placement(model), engine.device
    family = parts.family
    counted: dict[str, float] = {}
    with torch.compiler.set_stance("force_eager"), torch.no_grad():  # the model, not the compiler
        with FlopCounterMode(display=False) as counter, place.on_device(*parts.text_encoders):
            cond = family.encode(parts, ["a"], [""], width=size, height=size, device=device)
        counted["text"] = counter.get_total_flops()
        shape = family.latent_shape(parts, size, size)
        latents = torch.randn(1, *shape, device=device, dtype=parts.dtype)
        guidance = torch.ones(1, device=device)
        with FlopCounterMode(display=False) as counter, place.on_device(parts.denoiser):
            eager_noise(parts)(latents, torch.tensor(999.0, device=device), cond, guidance)
        counted["step"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter, place.on_device(parts.vae):
            parts.vae.decode(family.vae_input(parts, latents), return_dict=False)
        counted["decode"] = counter.get_total_flops()
    counted["image"] = counted["text"] + steps * counted["step"] + counted["decode"]
    return counted
