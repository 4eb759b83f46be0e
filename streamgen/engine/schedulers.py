"""Schedulers by name: the names requests may use, and how each is built from a model's config."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from streamgen.errors import InvalidRequest

__all__ = ["SCHEDULERS", "check_scheduler_name", "make_scheduler", "takes_generator"]

# name -> (diffusers class, overrides on top of the model's own scheduler config).
# The overrides pin what each name means whatever the checkpoint shipped (e.g. DDIM without
# sample clipping, which SD checkpoints need, and DPM++ 2M as the second-order multistep solver).
_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "dpmpp_2m": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}

SCHEDULERS: tuple[str, ...] = tuple(_TABLE)


def check_scheduler_name(name: str) -> None:
    """Raise :class:`InvalidRequest` naming the allowed schedulers if ``name`` is not one."""
    if name not in _TABLE:
        raise InvalidRequest("scheduler", name, f"must be one of {', '.join(SCHEDULERS)}")


def make_scheduler(name: str, model_config: Mapping[str, Any]) -> Any:
    """A fresh scheduler (they hold per-run state, so each batch gets its own)."""
    import diffusers

    check_scheduler_name(name)
    class_name, overrides = _TABLE[name]
    scheduler_cls = getattr(diffusers, class_name)
    return scheduler_cls.from_config({**dict(model_config), **overrides})


def takes_generator(scheduler: Any) -> bool:
    """Whether ``scheduler.step`` draws noise (ancestral / SDE) and so takes generators."""
    return "generator" in inspect.signature(scheduler.step).parameters
