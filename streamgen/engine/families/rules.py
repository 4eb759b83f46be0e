"""What a request may ask of one model family: pure rules, no torch, checked before any GPU work.

A field the model cannot honour is refused with :class:`InvalidRequest` naming the field,
never turned silently into a different image (a negative prompt FLUX.1 would ignore, a
guidance scale [schnell] has no input for, a size its latent packing cannot represent).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import clip
from streamgen.engine.types import Shape
from streamgen.errors import ConfigError, InvalidRequest

__all__ = ["FamilyRules", "Guidance"]

# cfg: classifier-free guidance, a negative and a positive pass mixed by guidance_scale;
# embedded: a guidance-distilled model that takes guidance_scale as an input (FLUX.1 [dev]);
# none: the model has no guidance input at all (FLUX.1 [schnell]).
Guidance = Literal["cfg", "embedded", "none"]

# The schema's default: a request that leaves guidance_scale alone asks for nothing.
_DEFAULT_GUIDANCE = next(
    f.default for f in dataclasses.fields(GenerationRequest) if f.name == "guidance_scale"
)


@dataclass(frozen=True)
class FamilyRules:
    """The limits of one loaded model (its family, and the variant its weights say it is)."""

    family: str  # the family's name: sd15, sdxl, flux, ...
    variant: str  # what the weights are within it: "dev", "schnell", or the family's name
    size_multiple: int  # width and height: the VAE's down-sampling times any latent packing
    guidance: Guidance
    negative_prompt: bool  # whether a negative prompt changes the image
    img2img: bool
    schedulers: tuple[str, ...]  # names a request may use; the first is the family's default
    min_steps: int = 1
    max_steps: int | None = None  # None: only the fleet's bound (validation.max_steps)
    # Width and height at most (a transformer's table of patch positions); None: the fleet's.
    max_size: int | None = None

    def scheduler_for(self, requested: str | None, configured_default: str) -> str:
        """The scheduler a request runs with: its own, else the fleet's default if this family
        takes it, else the family's own (a flow-matching model has no DPM++ 2M)."""
        if requested is not None:
            return requested
        if configured_default in self.schedulers:
            return configured_default
        return self.schedulers[0]

    def check(self, request: GenerationRequest, scheduler: str) -> None:
        """Raise InvalidRequest naming the first field this model cannot honour."""
        m = self.size_multiple
        for name, value in (("width", request.width), ("height", request.height)):
            if value <= 0 or value % m or (self.max_size is not None and value > self.max_size):
                top = "" if self.max_size is None else f" up to {self.max_size}"
                raise InvalidRequest(
                    name, value, f"a positive multiple of {m}{top} for {self.label}"
                )
        if request.steps < self.min_steps or (
            self.max_steps is not None and request.steps > self.max_steps
        ):
            top = "" if self.max_steps is None else f", at most {self.max_steps}"
            raise InvalidRequest(
                "steps", request.steps, f"at least {self.min_steps}{top} for {self.label}"
            )
        if scheduler not in self.schedulers:
            raise InvalidRequest(
                "scheduler", scheduler, f"one of {', '.join(self.schedulers)} for {self.label}"
            )
        if request.negative_prompt and not self.negative_prompt:
            raise InvalidRequest(
                "negative_prompt",
                clip(request.negative_prompt),
                f"must be empty: {self.label} has no classifier-free guidance, a negative prompt "
                "would change nothing",
            )
        if self.guidance == "none" and request.guidance_scale not in (0.0, _DEFAULT_GUIDANCE):
            raise InvalidRequest(
                "guidance_scale",
                request.guidance_scale,
                f"0 or the default {_DEFAULT_GUIDANCE}: {self.label} has no guidance input",
            )
        if request.task == "img2img" and not self.img2img:
            raise InvalidRequest("task", request.task, f"txt2img: {self.label} has no img2img here")

    def warm_up_shape(self, shape: Shape) -> Shape:
        """An ``engine.warmup_shapes`` entry as this family runs it: the fleet's default
        scheduler replaced by the family's own where it has none of that name (as for a request
        that names none); a size it cannot represent is a ConfigError naming the setting."""
        if shape.scheduler not in self.schedulers:
            shape = dataclasses.replace(shape, scheduler=self.scheduler_for(None, shape.scheduler))
        if shape.width % self.size_multiple or shape.height % self.size_multiple:
            raise ConfigError(
                "engine.warmup_shapes",
                f"{shape.width}x{shape.height}@{shape.model}: {self.label} needs multiples of "
                f"{self.size_multiple}",
            )
        return shape

    @property
    def label(self) -> str:
        return self.family if self.variant == self.family else f"{self.family} [{self.variant}]"
