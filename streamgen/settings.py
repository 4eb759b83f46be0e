"""One source of truth for configuration.

Every setting has a dotted name (``section.field``) and is read, in increasing precedence, from
its default, an optional TOML file (``[section] field = …``), the environment
(``STREAMGEN_SECTION_FIELD``) and command-line flags. Values are validated once, at start-up,
and an invalid one raises :class:`~streamgen.errors.ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from streamgen.credentials import SECRET_SETTINGS, read_properties_file, read_secret_file
from streamgen.errors import ConfigError

__all__ = [
    "EngineSettings",
    "KafkaSettings",
    "Settings",
    "StoreSettings",
    "TopicSettings",
    "ValidationBounds",
    "WorkerSettings",
    "load_settings",
]

ENV_PREFIX = "STREAMGEN_"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    # When set, records use Confluent Schema Registry framing; otherwise Avro single-object.
    schema_registry_url: str = ""
    # Passed to librdkafka as is (security.protocol, sasl.*, ssl.* …): "key=value,key=value".
    # Never printed: it holds passwords (repr=False keeps it out of any repr of the settings).
    client_config: dict[str, str] = field(default_factory=dict, repr=False)
    # A librdkafka properties file (key=value lines) read under client_config, which wins on
    # a key both set: the password can live in a mounted secret, the rest in the environment.
    client_config_file: str = ""
    # Start-up gives up on an unreachable or refusing broker after this long (exit 4); after a
    # good start the same outage is transient and retried.
    connect_timeout_s: float = 30.0


@dataclass(frozen=True)
class TopicSettings:
    requests: str = "streamgen.requests"
    results: str = "streamgen.results"
    dead_letter: str = "streamgen.dead-letter"
    partitions: int = 6
    replication_factor: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class StoreSettings:
    # file://DIR (embedded default) or s3://BUCKET[/PREFIX] with endpoint and credentials below.
    url: str = "file://./streamgen-images"
    endpoint: str = "127.0.0.1:9000"
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    # Files holding the keys instead (a mounted secret); one or the other, not both.
    access_key_file: str = ""
    secret_key_file: str = ""
    secure: bool = False
    region: str = ""
    image_format: str = "png"
    # A missing bucket stops start-up (a misspelt name must not quietly become a new bucket);
    # the local stack creates its own. true: create it.
    create_bucket: bool = False
    # Start-up gives up on an unreachable object store after this long (exit 4).
    connect_timeout_s: float = 30.0
    # Where img2img init images may be read from: s3://BUCKET[/PREFIX] or file://DIR roots
    # ("a,b" in the environment, a list in TOML). Empty: the store's own root (store.url) only.
    init_image_prefixes: tuple[str, ...] = ()
    # An init image is refused past this size before it is decoded: a request must not make
    # the worker read an unbounded object into memory.
    init_image_max_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class ValidationBounds:
    """What a request may ask for. Out-of-range fields are dead-lettered with these numbers."""

    min_size: int = 64
    max_size: int = 2048
    max_pixels: int = 2048 * 2048
    min_steps: int = 1
    max_steps: int = 150
    min_guidance: float = 0.0
    max_guidance: float = 30.0
    max_num_images: int = 8
    max_prompt_chars: int = 2000
    max_metadata_entries: int = 64


@dataclass(frozen=True)
class EngineSettings:
    # NAME=PATH_OR_HUB_ID pairs; the first one is also the model named "default".
    models: dict[str, str] = field(default_factory=dict)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | float16 | bfloat16 | float32
    default_scheduler: str = "dpmpp_2m"
    max_batch_size: int = 0  # 0: probe the largest batch that fits, once per shape
    attention: str = "sdpa"  # sdpa | xformers
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: bool = False
    # UNet step and VAE decoder compiled ahead of time into compile_cache_dir (aot.py): later
    # starts load them in seconds instead of tracing for tens of seconds like `compile`.
    aot_compile: bool = False
    # CUDA graphs of the UNet step and the VAE decode per batch-size bucket (graphs.py): batch 1
    # is launch-bound without them.
    cuda_graphs: bool = False
    # Persistent torch.compile caches (compile_cache.py): a restart with the same model, shapes
    # and versions compiles nothing. "" keeps torch's default (a per-user temp directory).
    compile_cache_dir: str = ""
    # WIDTHxHEIGHTxSTEPS[:SCHEDULER][@MODEL] entries compiled and captured before the worker
    # joins the group (warmup.py); empty: the first requests of each shape pay for it.
    warmup_shapes: tuple[str, ...] = ()
    vae_slicing: bool = False
    cpu_offload: bool = False
    # Threads that encode, store and publish outputs off the GPU thread. Mostly waiting on the
    # object store (fsync, HTTP): 2 threads held a no-op engine to 120 req/s, 8 to ~230.
    encode_threads: int = 8


@dataclass(frozen=True)
class WorkerSettings:
    group_id: str = "streamgen"
    group_instance_id: str = ""  # static membership when set
    # classic: JoinGroup/SyncGroup with the cooperative-sticky assignor; consumer: KIP-848's
    # broker-driven protocol (Kafka 4.x), without stop-the-world rebalances.
    group_protocol: str = "classic"
    worker_id: str = ""  # default: host-pid
    max_wait_ms: int = 200
    max_in_flight: int = 64
    # Records fetched ahead of admission, so the consumer need not pause (and lose librdkafka's
    # prefetch) each time the window is full; partitions pause only when this is full.
    fetch_buffer_records: int = 1000
    fetch_buffer_bytes: int = 32 * 1024 * 1024
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 45_000
    commit_interval_ms: int = 1_000
    max_attempts: int = 3
    retry_initial_ms: int = 200
    retry_max_ms: int = 30_000
    retry_budget_s: float = 0.0  # 0: retry transient failures for ever
    drain_timeout_s: float = 60.0
    metrics_port: int = 0  # 0: no /metrics endpoint
    # All interfaces by default, as Prometheus scraping across hosts expects; 127.0.0.1 keeps
    # /metrics on the host (the page holds no secrets, but it does show topics and load).
    metrics_address: str = "0.0.0.0"
    priority_fairness: int = 4  # a waiting shape is skipped at most this many times


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    validation: ValidationBounds = field(default_factory=ValidationBounds)
    engine: EngineSettings = field(default_factory=EngineSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)


T = TypeVar("T")


def _parse(name: str, kind: Any, raw: Any) -> Any:
    """Convert a raw value (string from env/flags, or a TOML value) to the field's type."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        items = raw if isinstance(raw, list | tuple) else str(raw).replace("\n", ",").split(",")
        return tuple(str(item).strip() for item in items if str(item).strip())
    if origin is dict or kind is dict:
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
            return kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, f"expected {kind.__name__}, got {raw!r}") from None
    return str(raw)


def _build(section_cls: type[T], section: str, values: Mapping[str, Any]) -> T:
    hints = typing.get_type_hints(section_cls)
    known = {f.name for f in dataclasses.fields(section_cls)}  # type: ignore[arg-type]
    for key in values:
        if key not in known:
            raise ConfigError(f"{section}.{key}", f"unknown setting; known: {sorted(known)}")
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
            sections[section].update(table)
    for section, section_field in _section_types().items():
        for f in dataclasses.fields(section_field):
            var = f"{ENV_PREFIX}{section}_{f.name}".upper()
            if var in env:
                sections[section][f.name] = env[var]
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if section not in sections or not key:
            raise ConfigError(dotted, "not a known setting")
        sections[section][key] = value
    built = {name: _build(cls, name, sections[name]) for name, cls in _section_types().items()}
    settings = _read_secret_files(Settings(**built))
    _validate(settings)
    return settings


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
    positive("worker.max_attempts", s.worker.max_attempts)
    positive("worker.commit_interval_ms", s.worker.commit_interval_ms)
    positive("worker.retry_initial_ms", s.worker.retry_initial_ms)
    positive("engine.encode_threads", s.engine.encode_threads)
    if s.worker.max_wait_ms < 0:
        raise ConfigError("worker.max_wait_ms", f"must be >= 0, got {s.worker.max_wait_ms}")
    if s.worker.retry_max_ms < s.worker.retry_initial_ms:
        raise ConfigError("worker.retry_max_ms", "must be >= worker.retry_initial_ms")
    if s.engine.max_batch_size < 0:
        raise ConfigError("engine.max_batch_size", "must be >= 0 (0 means probe)")
    if s.engine.dtype not in {"auto", "float16", "bfloat16", "float32"}:
        raise ConfigError(
            "engine.dtype", f"{s.engine.dtype!r} not in auto|float16|bfloat16|float32"
        )
    from streamgen.engine.warmup import warmup_shapes

    warmup_shapes(s)
    if s.engine.attention not in {"sdpa", "xformers"}:
        raise ConfigError("engine.attention", f"{s.engine.attention!r} not in sdpa|xformers")
    if not (s.store.url.startswith("file://") or s.store.url.startswith("s3://")):
        raise ConfigError(
            "store.url", f"{s.store.url!r}: expected file://DIR or s3://BUCKET[/PREFIX]"
        )
    if s.store.image_format not in {"png", "webp"}:
        raise ConfigError("store.image_format", f"{s.store.image_format!r} not in png|webp")
    positive("store.init_image_max_bytes", s.store.init_image_max_bytes)
    from streamgen.store.prefixes import AllowedPrefixes  # the store package imports settings

    AllowedPrefixes.from_settings(s.store)
    b = s.validation
    if not 8 <= b.min_size <= b.max_size:
        raise ConfigError("validation.min_size", "need 8 <= min_size <= max_size")
    if b.min_steps < 1 or b.max_steps < b.min_steps:
        raise ConfigError("validation.max_steps", "need 1 <= min_steps <= max_steps")
    if b.max_guidance < b.min_guidance:
        raise ConfigError("validation.max_guidance", "must be >= validation.min_guidance")
    if s.worker.drain_timeout_s <= 0:
        raise ConfigError("worker.drain_timeout_s", "must be > 0")
    if s.worker.group_protocol not in {"classic", "consumer"}:
        raise ConfigError(
            "worker.group_protocol", f"{s.worker.group_protocol!r} not in classic|consumer"
        )
    positive("kafka.connect_timeout_s", s.kafka.connect_timeout_s)
    positive("store.connect_timeout_s", s.store.connect_timeout_s)
