"""Checks of settings that span several values (share mode's, the adapters' limits), for
:func:`streamgen.configuration.load_settings`: each failure a ConfigError naming the setting."""

from __future__ import annotations

import math

from streamgen.errors import ConfigError
from streamgen.settings import Settings

__all__ = ["check_adapters", "check_share"]


def check_share(s: Settings) -> None:
    w = s.worker  # share mode (README, "Queue mode"); the group's lock is checked at start
    for name, ok, rule in (
        ("share_delivery_limit", w.share_delivery_limit >= 1, ">= 1"),
        ("share_batch_s", w.share_batch_s > 0, "> 0"),
        ("share_lock_margin_s", w.share_lock_margin_s >= 0, ">= 0"),
    ):
        if not ok:
            raise ConfigError(f"worker.{name}", f"must be {rule}, got {getattr(w, name)}")
    if w.mode == "share" and (w.tenant_max_in_flight or w.tenant_default_max_in_flight):
        raise ConfigError(  # a poll's records are all acknowledged before the next poll
            "worker.tenant_max_in_flight",
            "caps set records aside, which share mode cannot: unset them, or use worker.mode=group",
        )
    if w.mode == "share" and w.share_requeue and w.max_in_flight < 3:
        raise ConfigError(
            "worker.max_in_flight",
            f"share mode with worker.share_requeue needs at least 3, got {w.max_in_flight}: a "
            "round's window and two requeue chunks share it (the bound on redo after a crash); "
            "raise it, or set worker.share_requeue=false",
        )


def check_adapters(s: Settings) -> None:
    """The LoRA adapter limits (README, "Per-request LoRA adapters")."""
    for name, size in (
        ("store.adapter_max_bytes", s.store.adapter_max_bytes),
        ("engine.adapter_cache_bytes", s.engine.adapter_cache_bytes),
    ):
        if size <= 0:
            raise ConfigError(name, f"must be > 0, got {size}")
    if s.validation.max_adapters_per_request < 0:
        raise ConfigError("validation.max_adapters_per_request", "must be >= 0 (0: no adapters)")
    if not 0 < s.validation.max_adapter_scale < math.inf:
        raise ConfigError("validation.max_adapter_scale", "must be a finite number > 0")
