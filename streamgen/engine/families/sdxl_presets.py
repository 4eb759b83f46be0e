"""Few-step SDXL presets: SDXL-Turbo, SDXL-Lightning and DMD2, selected by the model mapping
(``--model NAME=PATH#PRESET``), because their weights ship SDXL's own configs and cannot say
which sampler they were distilled for.

Each is distilled for one sampler, a few steps and no classifier-free guidance, as its model
card says:

- ``turbo`` (stabilityai/sdxl-turbo): Euler ancestral, ``trailing`` spacing, 1 to 4 steps,
  ``guidance_scale=0``;
- ``lightning-2step`` / ``-4step`` / ``-8step`` (ByteDance/SDXL-Lightning, one UNet per step
  count): Euler, ``trailing`` spacing, exactly that many steps, ``guidance_scale=0``;
- ``dmd2`` (tianweiy/DMD2, the 4-step UNet): the LCM scheduler at timesteps 999, 749, 499, 249,
  ``guidance_scale=0``. LCM's own schedule gives exactly those when its
  ``original_inference_steps`` is 4 (1000 // 4 = 250 apart, from 999 down).

Without CFG a negative prompt has nothing to act on and a guidance scale no input, so both are
refused (``FamilyRules``). img2img is not offered on a preset yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.schedulers import SchedulerTable

__all__ = ["PRESETS", "SdxlPreset", "preset_rules"]


@dataclass(frozen=True)
class SdxlPreset:
    scheduler: str  # the name a request may use (and gets when it names none)
    scheduler_class: str
    scheduler_overrides: Mapping[str, Any]
    min_steps: int
    max_steps: int

    @property
    def table(self) -> SchedulerTable:
        return {self.scheduler: (self.scheduler_class, self.scheduler_overrides)}


_TRAILING = {"timestep_spacing": "trailing"}


def _lightning(steps: int) -> SdxlPreset:
    return SdxlPreset("euler", "EulerDiscreteScheduler", _TRAILING, steps, steps)


PRESETS: dict[str, SdxlPreset] = {
    "turbo": SdxlPreset("euler_a", "EulerAncestralDiscreteScheduler", _TRAILING, 1, 4),
    "lightning-2step": _lightning(2),
    "lightning-4step": _lightning(4),
    "lightning-8step": _lightning(8),
    "dmd2": SdxlPreset("lcm", "LCMScheduler", {"original_inference_steps": 4}, 4, 4),
}


def preset_rules(rules: FamilyRules, name: str) -> FamilyRules:
    """SDXL's ``rules`` narrowed to what preset ``name`` was distilled for."""
    preset = PRESETS[name]
    return dataclasses.replace(
        rules,
        variant=name,
        guidance="none",
        negative_prompt=False,
        img2img=False,
        schedulers=(preset.scheduler,),
        min_steps=preset.min_steps,
        max_steps=preset.max_steps,
    )
