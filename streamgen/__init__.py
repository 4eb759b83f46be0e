"""streamgen: a Kafka consumer fleet that turns image-generation requests into images.

The names below are what a producer or a downstream consumer imports; everything else in the
package is internal to the worker and the ``streamgen`` command and may change without notice.

::

    import streamgen

    settings = streamgen.load_settings()          # defaults < file < STREAMGEN_* < overrides
    codec = streamgen.request_codec(settings.kafka, settings.topics.requests)
    data = codec.encode(streamgen.GenerationRequest("r-1", "a red ceramic mug", seed=7))

- values: :class:`GenerationRequest` (and its :data:`Task`), :class:`GenerationResult` with its
  :data:`Status`, :class:`StoredImage`, :class:`Timings`, :class:`ResultError`,
  :class:`WorkerIdentity`; :func:`validate` checks a request as every worker does;
- the wire: :class:`AvroCodec` from :func:`request_codec` / :func:`result_codec`, raising
  :class:`DecodeError` / :class:`EncodeError`;
- settings: :class:`Settings` (:class:`KafkaSettings`, :class:`TopicSettings`,
  :class:`StoreSettings`, :class:`ValidationBounds`) and :func:`load_settings`;
- submitting: :class:`RequestPublisher` (→ :class:`Delivery`, or :class:`DeliveryFailed`) and
  :class:`ResultFollower`; :func:`cancel_requests` asks the workers not to generate requests;
- dead letters: :class:`Replayer` runs a :class:`ReplayFilter` (→ :class:`ReplaySummary`);
- lag: :class:`LagProbe` ``.snapshot`` → :class:`GroupLag` of :class:`PartitionLag` rows.

Each name is imported on first use (PEP 562): Python runs this module before any
``streamgen.<module>`` import, so importing them here eagerly would load the Kafka clients, the
producer side and the operator commands into every worker and every ``streamgen`` command.
None of them imports torch or diffusers (``tests/unit/test_face.py``).
"""

# Private aliases: the package's public names are exactly __all__ (tests/unit/test_face.py).
import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# Public name -> the module that defines it.
_HOMES = {
    "AvroCodec": "streamgen.contracts",
    "DecodeError": "streamgen.errors",
    "Delivery": "streamgen.submit.publish",
    "DeliveryFailed": "streamgen.submit.publish",
    "EncodeError": "streamgen.contracts",
    "GenerationRequest": "streamgen.contracts",
    "GenerationResult": "streamgen.contracts",
    "GroupLag": "streamgen.ops.lag_report",
    "KafkaSettings": "streamgen.settings",
    "LagError": "streamgen.ops.lag_probe",
    "LagProbe": "streamgen.ops.lag_probe",
    "PartitionLag": "streamgen.ops.lag_report",
    "ReplayError": "streamgen.ops.replay_run",
    "ReplayFilter": "streamgen.ops.replay_rules",
    "ReplaySummary": "streamgen.ops.replay_run",
    "Replayer": "streamgen.ops.replay_run",
    "RequestPublisher": "streamgen.submit.publish",
    "ResultError": "streamgen.contracts",
    "ResultFollower": "streamgen.submit.follow",
    "Settings": "streamgen.settings",
    "Status": "streamgen.contracts",
    "StoreSettings": "streamgen.settings",
    "StoredImage": "streamgen.contracts",
    "StreamgenError": "streamgen.errors",
    "Task": "streamgen.contracts",
    "Timings": "streamgen.contracts",
    "TopicSettings": "streamgen.settings",
    "ValidationBounds": "streamgen.settings",
    "WorkerIdentity": "streamgen.contracts",
    "cancel_requests": "streamgen.submit.cancel",
    "load_settings": "streamgen.configuration",
    "request_codec": "streamgen.contracts",
    "result_codec": "streamgen.contracts",
    "validate": "streamgen.contracts",
}

__all__ = [
    "AvroCodec",
    "DecodeError",
    "Delivery",
    "DeliveryFailed",
    "EncodeError",
    "GenerationRequest",
    "GenerationResult",
    "GroupLag",
    "KafkaSettings",
    "LagError",
    "LagProbe",
    "PartitionLag",
    "ReplayError",
    "ReplayFilter",
    "ReplaySummary",
    "Replayer",
    "RequestPublisher",
    "ResultError",
    "ResultFollower",
    "Settings",
    "Status",
    "StoreSettings",
    "StoredImage",
    "StreamgenError",
    "Task",
    "Timings",
    "TopicSettings",
    "ValidationBounds",
    "WorkerIdentity",
    "cancel_requests",
    "load_settings",
    "request_codec",
    "result_codec",
    "validate",
]


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'streamgen' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if _typing.TYPE_CHECKING:  # what a type checker sees: the same names, imported eagerly
    from streamgen.configuration import load_settings
    from streamgen.contracts import (
        AvroCodec,
        EncodeError,
        GenerationRequest,
        GenerationResult,
        ResultError,
        Status,
        StoredImage,
        Task,
        Timings,
        WorkerIdentity,
        request_codec,
        result_codec,
        validate,
    )
    from streamgen.errors import DecodeError, StreamgenError
    from streamgen.ops.lag_probe import LagError, LagProbe
    from streamgen.ops.lag_report import GroupLag, PartitionLag
    from streamgen.ops.replay_rules import ReplayFilter
    from streamgen.ops.replay_run import Replayer, ReplayError, ReplaySummary
    from streamgen.settings import (
        KafkaSettings,
        Settings,
        StoreSettings,
        TopicSettings,
        ValidationBounds,
    )
    from streamgen.submit.cancel import cancel_requests
    from streamgen.submit.follow import ResultFollower
    from streamgen.submit.publish import Delivery, DeliveryFailed, RequestPublisher
