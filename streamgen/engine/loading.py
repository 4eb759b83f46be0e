"""Load a diffusers pipeline per logical model name and keep the parts the engine drives."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from streamgen.engine.families import ModelFamily, PipelineParts, family_for_pipeline
from streamgen.errors import ConfigError
from streamgen.settings import Dtype, split_preset

__all__ = [
    "check_dtype",
    "load_pipeline",
    "model_sources",
    "pipeline_family",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

# engine.dtype's names (settings.Dtype, checked by the loader) as torch dtypes.
# One load at a time in a process. With accelerate installed, diffusers builds the modules
# inside accelerate's init_empty_weights, which patches torch.nn.Module.register_parameter for
# the whole process, not the thread: two loads that overlap (workers run as threads by a test,
# a benchmark or a library user) can restore each other's patch, and every module built after
# that is left on the meta device ("Cannot copy out of meta tensor"). A worker process loads
# its models one after another anyway, so the lock costs it nothing.
_LOADING = threading.Lock()

_DTYPES: dict[Dtype, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
}


def model_sources(models: Mapping[str, str]) -> dict[str, str]:
    """NAME -> path or hub id; the first model is also reachable as ``default``."""
    sources = dict(models)
    if sources and "default" not in sources:
        sources["default"] = next(iter(models.values()))
    return sources


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise ConfigError(
            "engine.device", f"{setting!r} is not auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("engine.device", f"{setting!r} asked for, but CUDA is not available")
    if device.type not in {"cpu", "cuda"}:
        raise ConfigError("engine.device", f"{setting!r} is not auto, cpu, cuda or cuda:N")
    return device


def check_dtype(setting: Dtype, device: torch.device) -> None:
    """Refuse an ``engine.dtype`` that cannot work on ``device``, before any model loads."""
    if device.type == "cpu" and setting == "float16":
        raise ConfigError("engine.dtype", "float16 is not supported on the CPU; use float32")


def resolve_dtype(setting: Dtype, device: torch.device, family_default: torch.dtype) -> torch.dtype:
    """``engine.dtype``; ``auto`` is the family's own on CUDA (fp16 for the UNets, bf16 where
    the authors publish bf16 weights) and float32 on the CPU."""
    check_dtype(setting, device)
    if setting == "auto":
        return family_default if device.type == "cuda" else torch.float32
    return _DTYPES[setting]


def load_pipeline(name: str, source: str, setting: Dtype, device: torch.device) -> PipelineParts:
    """Load ``source`` (a local directory or a hub id, then any ``#PRESET``) on the CPU, in
    ``engine.dtype`` (``setting``) resolved for its family.

    A local directory is loaded with ``local_files_only`` so that no code path touches the
    network; only a hub id may download.
    """
    import diffusers

    from streamgen.log_routing import quiet_diffusers

    quiet_diffusers()
    source, preset = split_preset(source)
    path, local = _located(name, source)
    loader: Any = diffusers.DiffusionPipeline
    try:
        # The family is known before the weights load, so that they load in its dtype.
        family = _family(loader, name, path, local)
        dtype = resolve_dtype(setting, device, family.cuda_dtype)
        with _LOADING:
            pipeline = loader.from_pretrained(
                path,
                dtype=dtype,
                local_files_only=local,
                # Said explicitly: left to its default, diffusers warns (and asks to install
                # accelerate) on every load where accelerate is absent, as on the CPU demo.
                low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
            )
    except (OSError, ValueError) as exc:
        raise _unloadable(name, source, local, exc) from exc
    parts = family.parts(name, pipeline, dtype)
    if preset:
        rules = family.preset_rules(parts.rules, preset, setting=f"engine.models[{name}]")
        parts = replace(parts, rules=rules)
    for module in parts.modules:
        module.eval().requires_grad_(False)
    log.info(
        "loaded model %s from %s (%s, family %s, %s)",
        name,
        source,
        type(pipeline).__name__,
        parts.rules.label,
        dtype,
    )
    return parts


def pipeline_family(name: str, source: str) -> ModelFamily:
    """The family model ``name`` (``engine.models`` value ``source``) belongs to, read from its
    ``model_index.json`` alone: for checks that must run before any weights load."""
    import diffusers

    source, _ = split_preset(source)
    path, local = _located(name, source)
    try:
        return _family(diffusers.DiffusionPipeline, name, path, local)
    except (OSError, ValueError) as exc:
        raise _unloadable(name, source, local, exc) from exc


def _located(name: str, source: str) -> tuple[str, bool]:
    """(what diffusers loads, whether it is a local directory): a path that does not exist is
    refused here, since only a name that is no path can be a hub id."""
    local = Path(source).expanduser().exists()
    if not local and source.startswith(("/", ".", "~")):
        raise ConfigError(
            f"engine.models[{name}]",
            f"directory {source!r} does not exist. Point --model at a pipeline directory "
            "(`streamgen model write --family sd15 --out DIR` writes one) or at a hub id.",
        )
    return (str(Path(source).expanduser()) if local else source), local


def _family(loader: Any, name: str, path: str, local: bool) -> ModelFamily:
    class_name = loader.load_config(path, local_files_only=local).get("_class_name", "")
    return family_for_pipeline(class_name, setting=f"engine.models[{name}]")


def _unloadable(name: str, source: str, local: bool, exc: Exception) -> ConfigError:
    hint = "" if local else " (not a local directory, so it was looked up as a hub id)"
    return ConfigError(f"engine.models[{name}]", f"cannot load {source!r}{hint}: {exc}")
