"""Model families: one module per family behind :class:`ModelFamily` (``base``).

Adding a family means one module here, an entry in ``FAMILIES``, its tiny-model writer
(``streamgen model write --family NAME``) and its tests; nothing else in the engine changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamgen.engine.families.base import ModelFamily, NoisePredictor, PipelineParts
from streamgen.engine.families.flux import FLUX
from streamgen.engine.families.flux2 import FLUX2
from streamgen.engine.families.flux2_model import FLUX2_ARCHS, write_flux2
from streamgen.engine.families.flux_model import FLUX_ARCHS, write_flux
from streamgen.engine.families.rules import FamilyRules
from streamgen.engine.families.sd3 import SD3
from streamgen.engine.families.sd3_model import SD3_ARCHS, write_sd3
from streamgen.engine.families.stable_diffusion import SD15, SDXL
from streamgen.engine.families.stable_diffusion_model import SD_ARCHS, write_stable_diffusion
from streamgen.errors import ConfigError

__all__ = [
    "ARCHS",
    "FAMILIES",
    "TINY_ARCHS",
    "FamilyRules",
    "ModelFamily",
    "NoisePredictor",
    "PipelineParts",
    "family_for_pipeline",
]

FAMILIES: dict[str, ModelFamily] = {
    family.name: family for family in (SD15, SDXL, FLUX, SD3, FLUX2)
}

# (arch, out, device=, dtype=) -> out: writes a random pipeline of that architecture.
Writer = Callable[..., Path]
ARCHS: dict[str, Writer] = {
    **dict.fromkeys(SD_ARCHS, write_stable_diffusion),
    **dict.fromkeys(FLUX_ARCHS, write_flux),
    **dict.fromkeys(SD3_ARCHS, write_sd3),
    **dict.fromkeys(FLUX2_ARCHS, write_flux2),
}
# family -> variant -> its tiny architecture; the first variant is the family's default.
TINY_ARCHS: dict[str, dict[str, str]] = {
    "sd15": {"sd15": "tiny"},
    "sdxl": {"sdxl": "tiny-sdxl"},
    "flux": {"dev": "tiny-flux-dev", "schnell": "tiny-flux-schnell"},
    # Large Turbo is Large's architecture: write large, load it as NAME=DIR#large-turbo.
    "sd3": {"large": "tiny-sd3-large", "medium": "tiny-sd3-medium"},
    "flux2": {"klein": "tiny-flux2-klein"},
}


def family_for_pipeline(class_name: str, *, setting: str) -> ModelFamily:
    """The family that serves diffusers pipeline ``class_name``, or ConfigError naming
    ``setting`` and what is served."""
    for family in FAMILIES.values():
        if class_name in family.pipeline_classes:
            return family
    served = ", ".join(f"{f.name} ({'/'.join(f.pipeline_classes)})" for f in FAMILIES.values())
    raise ConfigError(
        setting, f"a {class_name or 'unknown'} pipeline is not served; families: {served}"
    )
