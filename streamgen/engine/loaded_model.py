"""One model made ready to run: its parts on the device, the speed knobs applied, and the
compiled packages and CUDA graphs it runs through when those are on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from streamgen.engine.aot import AotModules
from streamgen.engine.families import PipelineParts
from streamgen.engine.graphs import AOT_WARM_UP_RUNS, WARM_UP_RUNS, BucketGraphs
from streamgen.engine.knobs import Placement, apply_knobs
from streamgen.engine.loading import load_pipeline
from streamgen.settings import EngineSettings

__all__ = ["LoadedModel", "device_label", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    parts: PipelineParts
    placement: Placement
    aot: AotModules | None  # engine.aot_compile
    graphs: BucketGraphs | None  # engine.cuda_graphs (capturing the AOT packages if any)


def load_model(
    name: str, source: str, settings: EngineSettings, device: torch.device
) -> LoadedModel:
    parts = load_pipeline(name, source, settings.dtype, device)
    placement = Placement(parts, device, offload=settings.cpu_offload)
    apply_knobs(parts, settings, device)
    aot = AotModules.configured(parts, settings, device_label(device))
    graphs = None
    if settings.cuda_graphs:
        graphs = BucketGraphs(
            parts,
            device,
            capture=True,
            predict=None if aot is None else aot.guided,
            decode=None if aot is None else aot.decode,
            warm_up_runs=WARM_UP_RUNS if aot is None else AOT_WARM_UP_RUNS,
        )
    return LoadedModel(parts, placement, aot, graphs)


def device_label(device: torch.device) -> str:
    """What compiled code depends on besides the model: torch and the device it runs on."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return f"torch{torch.__version__}-{name}"
