"""One source of truth for configuration.

Every setting (:mod:`streamgen.settings`) has a dotted name (``section.field``) and is read, in
increasing precedence, from its default, an optional TOML file (``[section] field = …``), the
environment (``STREAMGEN_SECTION_FIELD``) and command-line flags. Values are validated once, at
start-up, and an invalid one raises :class:`~streamgen.errors.ConfigError` naming it. The checks
that belong to a package above the settings (the warm-up shapes' grammar, the init-image
prefixes) are called from here, so this module sits above the store and the engine.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from streamgen.credentials import SECRET_SETTINGS, read_properties_file, read_secret_file
from streamgen.errors import ConfigError
from streamgen.lanes import parse_lanes
from streamgen.setting_checks import check_adapters, check_share
from streamgen.settings import Lane, Settings, StoreSettings, Tenant, TenantCap, WarmupShape
from streamgen.tenants import check_cap, check_weight, parse_tenant_caps, parse_tenants

__all__ = ["ENV_PREFIX", "RENAMED", "load_settings"]

log = logging.getLogger(__name__)

ENV_PREFIX = "STREAMGEN_"

# Settings that moved, old dotted name -> new: the old name is still read (file, environment,
# flags) as the new one, with a warning naming the new one, so existing deployments keep
# working while they are updated. Where both are given in one source, the new name wins.
RENAMED = {
    "engine.encode_threads": "worker.encode_threads",  # it sizes the worker's output pool
}


T = TypeVar("T")


def _parse(name: str, kind: Any, raw: Any) -> Any:
    """Convert a raw value (string from env/flags, or a TOML value) to the field's type."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in allowed:
            raise ConfigError(name, f"{raw!r} not in {'|'.join(allowed)}")
        return value
    if origin is tuple:
        return _parse_tuple(typing.get_args(kind)[0], raw)
    if origin is dict or kind is dict:
        return _parse_pairs(name, raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"expected true/false, got {raw!r}")
    if kind in (int, float):
        try:
            number = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, f"expected {kind.__name__}, got {raw!r}") from None
        # nan passes every "must be > 0" check and inf every upper bound: neither is a setting.
        if not math.isfinite(number):
            raise ConfigError(name, f"expected a finite number, got {raw!r}")
        return number
    return str(raw)


def _parse_tuple(element: Any, raw: Any) -> tuple[Any, ...]:
    """A list setting: a TOML list, or comma- or line-separated text."""
    if element is Lane:
        return parse_lanes(raw)  # a TOML table too: it keeps its order, the lanes' ranks
    if element is Tenant:
        return parse_tenants(raw)
    if element is TenantCap:
        return parse_tenant_caps(raw)
    items = raw if isinstance(raw, list | tuple) else str(raw).replace("\n", ",").split(",")
    texts = tuple(str(item).strip() for item in items if str(item).strip())
    if element is WarmupShape:
        from streamgen.engine.warmup import parse_entry  # above the settings: see the top

        return tuple(parse_entry(text) for text in texts)
    return texts


def _parse_pairs(name: str, raw: Any) -> dict[str, str]:
    """``KEY=VALUE`` pairs (comma- or line-separated), or a TOML table."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    pairs = [p for p in str(raw).replace("\n", ",").split(",") if p.strip()]
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            # A secret's fragment (a password holding ",") must not be echoed back.
            shown = "item without '='" if name in SECRET_SETTINGS else repr(pair)
            raise ConfigError(name, f"expected KEY=VALUE pairs, got {shown}")
        out[key.strip()] = value.strip()
    return out


def _build(section_cls: type[T], section: str, values: Mapping[str, Any]) -> T:
    hints = typing.get_type_hints(section_cls)
    known = {f.name for f in dataclasses.fields(section_cls)}  # type: ignore[arg-type]
    for key in values:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {section}.{near[0]}? " if near else ""
            raise ConfigError(f"{section}.{key}", f"unknown setting; {hint}known: {sorted(known)}")
    parsed = {k: _parse(f"{section}.{k}", hints[k], v) for k, v in values.items()}
    return section_cls(**parsed)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults < file < environment < ``overrides`` (dotted names) and validate."""
    env = os.environ if env is None else env
    sections: dict[str, dict[str, Any]] = {f.name: {} for f in dataclasses.fields(Settings)}
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("config_file", f"cannot read {path}: {exc}") from None
        for section, table in data.items():
            if section not in sections or not isinstance(table, dict):
                raise ConfigError(section, f"unknown section in {path}; known: {sorted(sections)}")
            _put_all(sections, {f"{section}.{key}": value for key, value in table.items()})
    names = [
        f"{section}.{f.name}"
        for section, cls in _section_types().items()
        for f in dataclasses.fields(cls)
    ]
    from_env = {}
    known_vars = {ENV_PREFIX + dotted.replace(".", "_").upper(): dotted for dotted in names}
    known_vars |= {ENV_PREFIX + old.replace(".", "_").upper(): old for old in RENAMED}
    for var, dotted in known_vars.items():
        if var in env:
            from_env[dotted] = env[var]
    _refuse_misspelt(env, known_vars, sections)
    _put_all(sections, from_env)
    given = {dotted: value for dotted, value in (overrides or {}).items() if value is not None}
    for dotted in given:
        section, _, key = dotted.partition(".")
        if section not in sections or not key:
            raise ConfigError(dotted, "not a known setting")
    _put_all(sections, given)
    built = {name: _build(cls, name, sections[name]) for name, cls in _section_types().items()}
    settings = _read_secret_files(Settings(**built))
    _validate(settings)
    return settings


def _put_all(sections: dict[str, dict[str, Any]], values: Mapping[str, Any]) -> None:
    """Write one source's values (dotted names) into ``sections``, reading renamed settings as
    their new names; a new name given in the same source wins over its old one."""
    for dotted, value in values.items():
        new = RENAMED.get(dotted)
        if new is None:
            continue
        log.warning("setting %s is deprecated: use %s", dotted, new)
        if new not in values:
            section, _, key = new.partition(".")
            sections[section][key] = value
    for dotted, value in values.items():
        if dotted not in RENAMED:
            section, _, key = dotted.partition(".")
            sections[section][key] = value


def _read_secret_files(s: Settings) -> Settings:
    """Fill secrets from the ``*_file`` settings; the values then live only in memory."""
    kafka = s.kafka
    if kafka.client_config_file:
        from_file = read_properties_file("kafka.client_config_file", kafka.client_config_file)
        kafka = dataclasses.replace(kafka, client_config={**from_file, **kafka.client_config})
    store = dataclasses.replace(
        s.store,
        access_key=_store_key(s.store, "access_key"),
        secret_key=_store_key(s.store, "secret_key"),
    )
    return dataclasses.replace(s, kafka=kafka, store=store)


def _store_key(store: StoreSettings, name: str) -> str:
    value: str = getattr(store, name)
    path: str = getattr(store, f"{name}_file")
    if not path:
        return value
    if value:
        raise ConfigError(
            f"store.{name}_file", f"set either store.{name} or store.{name}_file, not both"
        )
    return read_secret_file(f"store.{name}_file", path)


def _refuse_misspelt(
    env: Mapping[str, str], known_vars: Mapping[str, str], sections: Mapping[str, Any]
) -> None:
    """A ``STREAMGEN_<SECTION>_…`` variable that names no setting is a typo, not a no-op: the
    worker would otherwise run with the default the operator meant to change. Variables outside
    the sections (``STREAMGEN_CACHE_DIR``, ``STREAMGEN_JAVA``, …) belong to other tools."""
    prefixes = tuple(f"{ENV_PREFIX}{section.upper()}_" for section in sections)
    for var in sorted(env):
        if var.startswith(prefixes) and var not in known_vars:
            near = difflib.get_close_matches(var, known_vars, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(var, f"environment variable names no setting{hint}")


def _section_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _validate(s: Settings) -> None:
    def positive(name: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(name, f"must be > 0, got {value}")

    positive("topics.partitions", s.topics.partitions)
    positive("topics.replication_factor", s.topics.replication_factor)
    positive("worker.max_in_flight", s.worker.max_in_flight)
    positive("worker.fetch_buffer_records", s.worker.fetch_buffer_records)
    positive("worker.fetch_buffer_bytes", s.worker.fetch_buffer_bytes)
    positive("worker.stall_timeout_s", s.worker.stall_timeout_s)
    positive("worker.max_attempts", s.worker.max_attempts)
    positive("worker.commit_interval_ms", s.worker.commit_interval_ms)
    positive("worker.retry_initial_ms", s.worker.retry_initial_ms)
    positive("worker.encode_threads", s.worker.encode_threads)
    positive("worker.cancels_max_ids", s.worker.cancels_max_ids)
    positive("worker.cancels_max_age_s", s.worker.cancels_max_age_s)
    check_share(s)
    if s.worker.progress_interval_s < 0:
        raise ConfigError(
            "worker.progress_interval_s",
            f"must be >= 0 (0: every step), got {s.worker.progress_interval_s}",
        )
    check_weight("worker.tenant_default_weight", "(default)", s.worker.tenant_default_weight)
    check_cap(
        "worker.tenant_default_max_in_flight", "(default)", s.worker.tenant_default_max_in_flight
    )
    if s.worker.progress and not s.topics.progress:
        raise ConfigError("topics.progress", "is empty but worker.progress is on: name a topic")
    if s.worker.max_wait_ms < 0:
        raise ConfigError("worker.max_wait_ms", f"must be >= 0, got {s.worker.max_wait_ms}")
    if s.worker.retry_max_ms < s.worker.retry_initial_ms:
        raise ConfigError("worker.retry_max_ms", "must be >= worker.retry_initial_ms")
    if s.engine.max_batch_size < 0:
        raise ConfigError("engine.max_batch_size", "must be >= 0 (0 means probe)")
    _check_engine(s)
    if not (s.store.url.startswith("file://") or s.store.url.startswith("s3://")):
        raise ConfigError(
            "store.url", f"{s.store.url!r}: expected file://DIR or s3://BUCKET[/PREFIX]"
        )
    positive("store.init_image_max_bytes", s.store.init_image_max_bytes)
    from streamgen.store.prefixes import AllowedPrefixes  # the store package imports settings

    AllowedPrefixes.from_settings(s.store)
    b = s.validation
    if not 8 <= b.min_size <= b.max_size:
        raise ConfigError("validation.min_size", "need 8 <= min_size <= max_size")
    if b.min_steps < 1 or b.max_steps < b.min_steps:
        raise ConfigError("validation.max_steps", "need 1 <= min_steps <= max_steps")
    check_adapters(s)
    if b.max_guidance < b.min_guidance:
        raise ConfigError("validation.max_guidance", "must be >= validation.min_guidance")
    if s.worker.drain_timeout_s <= 0:
        raise ConfigError("worker.drain_timeout_s", "must be > 0")
    positive("kafka.connect_timeout_s", s.kafka.connect_timeout_s)
    positive("store.connect_timeout_s", s.store.connect_timeout_s)
    if not 0 <= s.worker.metrics_port <= _MAX_PORT:
        raise ConfigError("worker.metrics_port", f"{s.worker.metrics_port} not in 0..{_MAX_PORT}")


_MAX_PORT = 65535


# torch's names for the devices the engine runs on; "auto" picks CUDA where it is available.
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _check_engine(s: Settings) -> None:
    """What can be known of the engine settings without torch: the device's name, each model
    mapping's ``PATH[#PRESET]`` form, and the scheduler and warm-up shapes they name (whether
    CUDA is there, and whether a family takes a preset, are the engine's to say at start)."""
    from streamgen.engine.schedulers import SCHEDULERS
    from streamgen.engine.warmup import warmup_shapes

    e = s.engine
    if not _DEVICE.fullmatch(e.device):
        raise ConfigError("engine.device", f"{e.device!r} is not auto, cpu, cuda or cuda:N")
    for name, source in e.models.items():
        path, hash_, preset = source.partition("#")
        if not path.strip() or (hash_ and not preset.strip()) or "#" in preset:
            raise ConfigError(
                f"engine.models[{name}]", f"{source!r} is not PATH_OR_HUB_ID[#PRESET]"
            )
    if e.default_scheduler not in SCHEDULERS:
        raise ConfigError(
            "engine.default_scheduler", f"{e.default_scheduler!r} not in {'|'.join(SCHEDULERS)}"
        )
    warmup_shapes(s)
