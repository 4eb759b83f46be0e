"""``engine.fuse_qkv`` on every family's tiny architecture: the fused projections are the ones
that run (the unfused ones are gone, not kept as a second copy of the weights), and the images
equal the unfused engine's.

diffusers' own fused processor for SD3 dropped SD3.5's q/k norms (a tiny SD3.5 Large image
moved by 19 levels) and failed on Medium's dual attention: ``families/joint_attention.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families import TINY_ARCHS
from streamgen.engine.families.fused_projections import FUSED_SOURCES
from streamgen.engine.model_init import write_model
from streamgen.settings import EngineSettings
from tests.unit.engine.conftest import assert_same_images
from tests.unit.engine.conftest import request as generation_request

# Tiny architectures other tests already write once per session (conftest's fixtures).
SESSION_DIRS = {
    "tiny": "tiny_dir",
    "tiny-sdxl": "tiny_sdxl_dir",
    "tiny-flux-dev": "tiny_flux_dir",
    "tiny-flux-schnell": "tiny_flux_schnell_dir",
    "tiny-sd3-large": "tiny_sd3_large_dir",
}
# What each family's rules accept: FLUX.1 [dev] 28 steps or more, [klein] and [schnell] no
# guidance input, SD3.5 with CFG.
FIELDS: dict[str, dict[str, Any]] = {
    "sd15": {},
    "sdxl": {},
    "flux": {"steps": 28, "guidance_scale": 3.5},
    "sd3": {"guidance_scale": 4.5},
    "flux2": {"steps": 4, "guidance_scale": 0.0},
}
SCHNELL = {"steps": 4, "guidance_scale": 0.0}
ARCHS = [(family, arch) for family, variants in TINY_ARCHS.items() for arch in variants.values()]


def _fused_layers(model: torch.nn.Module) -> int:
    """Fused projection layers in ``model``; none may keep the layers it was made from."""
    fused = 0
    for module in model.modules():
        for name, sources in FUSED_SOURCES.items():
            if hasattr(module, name):
                fused += 1
                assert not any(hasattr(module, source) for source in sources), name
    return fused


def _weights(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _model_dir(arch: str, request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> Path:
    if arch in SESSION_DIRS:
        directory: Path = request.getfixturevalue(SESSION_DIRS[arch])
        return directory
    return write_model(arch, tmp.mktemp(arch))


@pytest.mark.parametrize(("family", "arch"), ARCHS, ids=[arch for _, arch in ARCHS])
def test_fused_qkv_runs_and_changes_no_image(
    family: str,
    arch: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = _model_dir(arch, request, tmp_path_factory)
    plain = DiffusionEngine(EngineSettings(models={"tiny": str(directory)}))
    fused = DiffusionEngine(EngineSettings(models={"tiny": str(directory)}, fuse_qkv=True))
    parts, plain_parts = fused.parts("tiny"), plain.parts("tiny")
    # Fusion took effect (a processor reaching for a dropped projection would fail below),
    # and holds the same weights as before, not a second copy.
    assert _fused_layers(parts.denoiser) > 0 and _fused_layers(parts.vae) > 0
    assert _fused_layers(plain_parts.denoiser) == 0
    for module in ("denoiser", "vae"):
        assert _weights(getattr(parts, module)) == _weights(getattr(plain_parts, module))
    fields = SCHNELL if arch.endswith("schnell") else FIELDS[family]
    batch = [
        generation_request("a", seed=1, **fields),
        generation_request("b", seed=2, num_images=2, **fields),
    ]
    for a, b in zip(plain.generate(batch), fused.generate(batch), strict=True):
        assert_same_images(a, b)
