"""Schedulers by name: the names requests may use, and how each is built from a model's config.

Two tables, by the kind of noise schedule a model was trained with; each family takes one
(``ModelFamily.scheduler_table``). A name means one thing within a table whatever the
checkpoint shipped; ``euler`` is Euler in both, on the discrete (epsilon / v) schedule or on
the flow-matching one.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from streamgen.errors import InvalidRequest

__all__ = [
    "DISCRETE_SCHEDULERS",
    "FLOW_SCHEDULERS",
    "SCHEDULERS",
    "SchedulerTable",
    "check_scheduler_name",
    "make_scheduler",
    "takes_generator",
]

# name -> (diffusers class, overrides on top of the model's own scheduler config).
SchedulerTable = Mapping[str, tuple[str, Mapping[str, Any]]]

# DDPM-trained models (SD 1.x, SDXL). The overrides pin what each name means whatever the
# checkpoint shipped (e.g. DDIM without sample clipping, which SD checkpoints need, and DPM++ 2M
# as the second-order multistep solver).
DISCRETE_SCHEDULERS: SchedulerTable = {
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

# Rectified-flow models (FLUX.1, SD3): Euler on the flow-matching ODE, with the checkpoint's
# own shift settings (FLUX.1 [dev]'s resolution-dependent one included).
FLOW_SCHEDULERS: SchedulerTable = {
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
}

# Every name some family accepts: what a request may name before its model is known.
SCHEDULERS: tuple[str, ...] = tuple(dict.fromkeys([*DISCRETE_SCHEDULERS, *FLOW_SCHEDULERS]))


def check_scheduler_name(name: str, table: SchedulerTable = DISCRETE_SCHEDULERS) -> None:
    """Raise :class:`InvalidRequest` naming the allowed schedulers if ``name`` is not one."""
    if name not in table:
        raise InvalidRequest("scheduler", name, f"must be one of {', '.join(table)}")


def make_scheduler(
    name: str, model_config: Mapping[str, Any], table: SchedulerTable = DISCRETE_SCHEDULERS
) -> Any:
    """A fresh scheduler (they hold per-run state, so each batch gets its own)."""
    import diffusers

    check_scheduler_name(name, table)
    class_name, overrides = table[name]
    scheduler_cls = getattr(diffusers, class_name)
    return scheduler_cls.from_config({**dict(model_config), **overrides})


def takes_generator(scheduler: Any) -> bool:
    """Whether ``scheduler.step`` draws noise (ancestral / SDE) and so takes generators."""
    return "generator" in inspect.signature(scheduler.step).parameters
