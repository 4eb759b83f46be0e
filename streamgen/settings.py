"""The typed settings: every section, its fields and their defaults.

Every setting has a dotted name (``section.field``). :func:`streamgen.configuration.load_settings`
reads them from a TOML file, the environment and flags and checks them whole; the packages
below it (contracts, store, engine, …) import only these types, so they never depend on how
the settings were read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Attention",
    "CompileMode",
    "Dtype",
    "EngineSettings",
    "GroupProtocol",
    "ImageFormatName",
    "KafkaSettings",
    "Lane",
    "Settings",
    "StoreSettings",
    "Tenant",
    "TenantCap",
    "TopicSettings",
    "ValidationBounds",
    "WarmupShape",
    "WorkerMode",
    "WorkerSettings",
    "split_preset",
]

# The values an enum-like setting may take: the loader refuses any other, naming the setting,
# so the code that reads one never meets a value it does not know.
Dtype = Literal["auto", "float16", "bfloat16", "float32"]
Attention = Literal["sdpa", "xformers"]
# default: Inductor's defaults; max-autotune: Inductor times GEMM templates and tunes its kernels'
# launch parameters (mode "max-autotune-no-cudagraphs": streamgen's own graphs stay the graphs).
CompileMode = Literal["default", "max-autotune"]
GroupProtocol = Literal["classic", "consumer"]
WorkerMode = Literal["group", "share"]  # how records are consumed (README, "Queue mode")
ImageFormatName = Literal["png", "jpeg", "webp"]  # contracts.formats.FORMATS' names


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
class Lane:
    """One ``topics.lanes`` entry, ``NAME=MIN_SHARE``, parsed and checked by the loader
    (lanes.py). Its topic is ``topics.requests`` for the lane named "default", else
    ``<topics.requests>.<name>``; its rank is its place in the list (first: drained first)."""

    name: str
    # The least fraction of the GPU time the lane gets while it has waiting work.
    min_share: float

    def __str__(self) -> str:
        """``NAME=MIN_SHARE``, as the setting is written (and read back)."""
        return f"{self.name}={self.min_share!r}"


@dataclass(frozen=True)
class Tenant:
    """One ``worker.tenants`` entry, ``NAME=WEIGHT``, parsed and checked by the loader
    (tenants.py): inside a worker the tenants present share the GPU time in proportion to
    their weights (worker/tenant_share.py)."""

    name: str
    weight: float

    def __str__(self) -> str:
        """``NAME=WEIGHT``, as the setting is written (and read back)."""
        return f"{self.name}={self.weight!r}"


@dataclass(frozen=True)
class TenantCap:
    """One ``worker.tenant_max_in_flight`` entry, ``NAME=CAP``, parsed and checked by the
    loader (tenants.py): at most CAP of the tenant's requests in flight in a worker's window,
    the rest set aside until some finish (worker/deferrals.py). 0: no cap."""

    name: str
    cap: int

    def __str__(self) -> str:
        """``NAME=CAP``, as the setting is written (and read back)."""
        return f"{self.name}={self.cap}"


@dataclass(frozen=True)
class TopicSettings:
    # The requests topic; with lanes, the topic of the lane named "default".
    requests: str = "streamgen.requests"
    # Priority lanes, highest first (NAME=MIN_SHARE,...; must name "default"). Empty: one lane,
    # topics.requests alone, as a fleet without lanes always ran.
    lanes: tuple[Lane, ...] = ()
    results: str = "streamgen.results"
    dead_letter: str = "streamgen.dead-letter"
    # Cancel records (`streamgen cancel`), keyed by request id: compacted and deleted after
    # retention_ms like the requests they name (a cancel outliving its request cancels nothing).
    cancels: str = "streamgen.cancels"
    # Progress events (worker.progress), keyed by request id. Created with the other topics,
    # so turning progress on is one worker setting and `submit --wait` can always follow it.
    progress: str = "streamgen.progress"
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
    image_format: ImageFormatName = "png"
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
    # A request's LoRA adapter (read from the same prefixes) is refused past this size before
    # it is parsed; an SDXL adapter of rank 128 in fp16 is about 0.7 GB.
    adapter_max_bytes: int = 1024 * 1024 * 1024


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
    # LoRA adapters one request may name, and how far from 0 each one's scale may be.
    max_adapters_per_request: int = 4
    max_adapter_scale: float = 4.0


@dataclass(frozen=True)
class WarmupShape:
    """One ``engine.warmup_shapes`` entry, ``WIDTHxHEIGHTxSTEPS[:SCHEDULER][@MODEL]``, parsed
    and checked by the loader (configuration.py)."""

    width: int
    height: int
    steps: int
    scheduler: str = ""  # "": engine.default_scheduler
    model: str = "default"


@dataclass(frozen=True)
class EngineSettings:
    # NAME=PATH_OR_HUB_ID[#PRESET] pairs; the first one is also the model named "default".
    models: dict[str, str] = field(default_factory=dict)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Dtype = "auto"  # auto: the family's own on CUDA (fp16 or bf16), fp32 on CPU
    default_scheduler: str = "dpmpp_2m"
    max_batch_size: int = 0  # 0: probe the largest batch that fits, once per shape
    attention: Attention = "sdpa"
    channels_last: bool = False
    fuse_qkv: bool = False
    compile: bool = False
    # How hard Inductor works on what `compile` or `aot_compile` compiles (knobs.py): longer
    # compiles at first start, faster kernels where its tuning finds them. Same images.
    compile_mode: CompileMode = "default"
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
    warmup_shapes: tuple[WarmupShape, ...] = ()
    vae_slicing: bool = False
    cpu_offload: bool = False
    # The transformer families' block linears as FP8 products (Hopper/Ada, bf16 models): faster,
    # and the only knob that CHANGES IMAGES (fp8.py; drift measured in docs/benchmarks.md).
    fp8_linear: bool = False
    # cuDNN times every convolution algorithm for each new input shape (and batch bucket) and
    # keeps the fastest; false: its heuristics pick one at once. The timing runs again in every
    # process, compiling kernels at run time: docs/benchmarks.md ("Start-up") measures both.
    cudnn_benchmark: bool = True
    # Loaded LoRA adapters kept on the device, least recently used dropped first past this many
    # bytes (engine/adapters/cache.py); one in use by a batch is never dropped under it.
    adapter_cache_bytes: int = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class WorkerSettings:
    group_id: str = "streamgen"
    group_instance_id: str = ""  # static membership when set
    # classic: JoinGroup/SyncGroup with the cooperative-sticky assignor; consumer: KIP-848's
    # broker-driven protocol (Kafka 4.x), without stop-the-world rebalances.
    group_protocol: GroupProtocol = "classic"
    # group: a consumer group (partitions owned, offsets committed behind durable work); share:
    # a share group (KIP-932, Kafka 4.2+: records locked, each accepted once durable).
    mode: WorkerMode = "group"
    # Share mode: a record the broker delivered more than this many times is dead-lettered (its
    # reason names the count) instead of tried again. Must stay below the group's
    # share.delivery.count.limit (5 by default), past which the broker drops a record unseen.
    share_delivery_limit: int = 4
    # Share mode: a round of records must be durable this long before their locks end (the
    # group's share.record.lock.duration.ms, 30 s by default); the client cannot extend a lock.
    share_lock_margin_s: float = 5.0
    # Share mode: the longest one engine batch is expected to take. A round takes as many
    # batches' worth of records as fit in the lock less the margin; none fitting is exit 4.
    share_batch_s: float = 5.0
    # Share mode: a record the lock leaves no time to start (or a stop) is requeued (a copy
    # produced to its topic, the original accepted once the copy is durable) instead of
    # released, which would cost it a delivery; needs Write on the requests topics.
    share_requeue: bool = True
    worker_id: str = ""  # default: host-pid
    max_wait_ms: int = 200
    max_in_flight: int = 64
    # Records fetched ahead of admission, so the consumer need not pause (and lose librdkafka's
    # prefetch) each time the window is full; partitions pause only when this is full.
    fetch_buffer_records: int = 1000
    fetch_buffer_bytes: int = 32 * 1024 * 1024
    # An owned partition with records waiting and no fetch progress this long is reported
    # (log line, streamgen_partition_stalled_seconds): a stall is never silent.
    stall_timeout_s: float = 60.0
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
    # Threads that encode, store and publish outputs off the GPU thread. Mostly waiting on the
    # object store (fsync, HTTP): 2 threads held a no-op engine to 120 req/s, 8 to ~230.
    # (Formerly engine.encode_threads, still accepted: configuration.RENAMED.)
    encode_threads: int = 8
    # The worker's memory of cancelled request ids (worker/cancels.py): at most this many, each
    # for at most this long after it was asked for. ~150 bytes an id; the age should be no
    # shorter than topics.retention_ms, or a request may outlive its cancel.
    cancels_max_ids: int = 100_000
    cancels_max_age_s: float = 7 * 24 * 3600.0
    # Progress events to topics.progress (worker/progress.py): picked up, batch started,
    # denoising, stored. Off by default: nobody may be reading them.
    progress: bool = False
    # A batch's denoising progress goes out at its first and last step and otherwise at most
    # once this often: a step takes 5 ms to seconds, so a step count would flood or go quiet.
    # 0: every step.
    progress_interval_s: float = 1.0
    # Tenants by name and weight (NAME=WEIGHT,...): within a lane the GPU time is shared
    # between the tenants present by weighted fair queueing. Empty: no tenant is told apart,
    # as before tenants existed. Configured tenants are also the only ones named in metrics.
    tenants: tuple[Tenant, ...] = ()
    # The weight of a tenant worker.tenants does not name (the request's "" tenant included).
    tenant_default_weight: float = 1.0
    # Caps on each tenant's requests in flight (NAME=CAP,...), so one tenant's flood cannot
    # fill the window (max_in_flight): its records beyond the cap are set aside, not lost.
    tenant_max_in_flight: tuple[TenantCap, ...] = ()
    # The cap of a tenant worker.tenant_max_in_flight does not name ("" included); 0: none.
    tenant_default_max_in_flight: int = 0


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    validation: ValidationBounds = field(default_factory=ValidationBounds)
    engine: EngineSettings = field(default_factory=EngineSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)


def split_preset(source: str) -> tuple[str, str]:
    """An ``engine.models`` value as (path or hub id, preset; "" for none). The preset names what
    weights cannot say about themselves, e.g. ``#large-turbo``: SD3.5 Large Turbo ships Large's
    configs. A hub id never holds ``#``."""
    path, _, preset = source.partition("#")
    return path, preset
