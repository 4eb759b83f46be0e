"""Tenants: who a request is for, and what share of a worker's GPU time each one gets.

``worker.tenants`` lists tenants as ``NAME=WEIGHT`` pairs, e.g. ``search=3,ads=1``; a request
names its tenant in its ``tenant`` field (empty: the default tenant). A tenant the setting does
not name weighs ``worker.tenant_default_weight``. Within a priority lane the tenants present
share the GPU time in proportion to their weights (worker/tenant_share.py). Without
``worker.tenants`` every request is one tenant's and the worker behaves as it did before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from streamgen.contracts.validation import TENANT_PATTERN
from streamgen.errors import ConfigError
from streamgen.setting_pairs import named_pairs
from streamgen.settings import Tenant, TenantCap, WorkerSettings

__all__ = [
    "OTHER_TENANTS",
    "check_cap",
    "parse_tenant_caps",
    "parse_tenants",
    "tenant_caps",
    "tenant_label",
    "tenant_names",
    "tenant_weight",
    "tenant_weights",
]

SETTING = "worker.tenants"
CAPS_SETTING = "worker.tenant_max_in_flight"
# The metrics label of every tenant worker.tenants does not name: requests choose their own
# tenant, so a label per name would let any producer grow the label set without bound.
OTHER_TENANTS = "other"


def tenant_weights(worker: WorkerSettings) -> dict[str, float]:
    """Each configured tenant -> its weight."""
    return {tenant.name: tenant.weight for tenant in worker.tenants}


def tenant_weight(worker: WorkerSettings) -> Callable[[str], float] | None:
    """Any tenant's weight (the default for those not named); None without worker.tenants:
    the worker then tells no tenants apart, exactly as before tenants existed."""
    if not worker.tenants:
        return None
    weights, default = tenant_weights(worker), worker.tenant_default_weight
    return lambda tenant: weights.get(tenant, default)


def tenant_names(worker: WorkerSettings) -> list[str]:
    """Every tenant the settings name, by weight or by cap: the tenants metrics name."""
    named = [tenant.name for tenant in worker.tenants]
    return named + [cap.name for cap in worker.tenant_max_in_flight if cap.name not in named]


def tenant_label(tenant: str, configured: Mapping[str, float]) -> str:
    """The metrics label of ``tenant``: its name if configured, else "other"."""
    return tenant if tenant in configured else OTHER_TENANTS


def tenant_caps(worker: WorkerSettings) -> Callable[[str], int] | None:
    """Any tenant's cap on requests in flight (0: none); None when no tenant has one: the
    worker then sets nothing aside, exactly as before caps existed."""
    caps = {cap.name: cap.cap for cap in worker.tenant_max_in_flight}
    default = worker.tenant_default_max_in_flight
    if not default and not any(caps.values()):
        return None
    return lambda tenant: caps.get(tenant, default)


def parse_tenant_caps(raw: Any) -> tuple[TenantCap, ...]:
    """``worker.tenant_max_in_flight`` (``flood=8,ads=4``), read like ``worker.tenants``."""
    pairs = _named_tenants(CAPS_SETTING, raw, "NAME=CAP")
    return tuple(TenantCap(name, check_cap(CAPS_SETTING, name, cap)) for name, cap in pairs)


def check_cap(setting: str, name: str, raw: Any) -> int:
    """A cap: a whole number >= 0 (0: no cap). ConfigError says what was wrong."""
    try:
        cap = int(str(raw).strip())
    except ValueError:
        raise ConfigError(setting, f"tenant {name!r}: cap {raw!r} is not a whole number") from None
    if cap < 0:
        raise ConfigError(setting, f"tenant {name!r}: cap must be >= 0 (0: no cap), got {raw!r}")
    return cap


def _named_tenants(setting: str, raw: Any, form: str) -> list[tuple[str, Any]]:
    """``NAME=VALUE`` pairs whose names are tenant names, each named once."""
    pairs = named_pairs(setting, raw, form)
    bad = [name for name, _ in pairs if not TENANT_PATTERN.fullmatch(name)]
    if bad:
        allowed = "1..64 characters from A-Z a-z 0-9 . _ -"
        raise ConfigError(setting, f"tenant name {bad[0]!r}: expected {allowed}")
    names = [name for name, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(setting, f"tenant {twice[0]!r} is named twice")
    return pairs


def parse_tenants(raw: Any) -> tuple[Tenant, ...]:
    """``worker.tenants`` from text (``a=3,b=1``), a TOML list of such strings or a TOML table
    (``{search = 3, ads = 1}``), checked whole: ConfigError names the setting and the fault."""
    pairs = _named_tenants(SETTING, raw, "NAME=WEIGHT")
    tenants = tuple(Tenant(name, check_weight(SETTING, name, w)) for name, w in pairs)
    names = [tenant.name for tenant in tenants]
    if OTHER_TENANTS in names:
        raise ConfigError(
            SETTING, f"{OTHER_TENANTS!r} is the metrics label of unnamed tenants: pick another"
        )
    return tenants


def check_weight(setting: str, name: str, raw: Any) -> float:
    """A weight: a finite number > 0. Zero would starve the tenant; ConfigError says so."""
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(setting, f"tenant {name!r}: weight {raw!r} is not a number") from None
    if not (math.isfinite(weight) and weight > 0):
        raise ConfigError(
            setting, f"tenant {name!r}: weight must be > 0 (0 would never be served), got {raw!r}"
        )
    return weight
