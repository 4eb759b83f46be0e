"""Third-party output routed into streamgen's logging, known-harmless lines demoted to DEBUG.

A newcomer reads every warning as something to act on, so a line that asks for nothing (a
fallback streamgen is fine with, a transient state a client retries by itself) is shown only at
``--log-level DEBUG``; every other third-party warning stays visible.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__all__ = ["KNOWN_NOISE", "demote_known_noise", "librdkafka_logger", "quiet_diffusers"]

# logger name -> fragments of messages that ask nothing of the user.
KNOWN_NOISE: dict[str, tuple[str, ...]] = {
    # transformers falls back to its PIL image processors without torchvision; streamgen never
    # uses an image processor (the safety checker's feature extractor is not loaded).
    "transformers.utils.import_utils": ("requires torchvision (not installed)",),
    # librdkafka retries these by itself: a broker that just started is still loading the
    # transaction/group coordinator when the first idempotent producer asks for its id.
    "streamgen.librdkafka": ("Coordinator load in progress",),
}


class _Demote(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self._fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not any(fragment in message for fragment in self._fragments):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("streamgen").isEnabledFor(logging.DEBUG)


def demote_known_noise() -> None:
    """Install the filters (once; no third-party import needed: loggers are made by name)."""
    for name, fragments in KNOWN_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Demote) for f in logger.filters):
            logger.addFilter(_Demote(fragments))


def librdkafka_logger() -> logging.Logger:
    """For a client's ``logger`` setting: librdkafka's lines go through Python logging (at their
    syslog level) instead of straight to stderr, so the filters above and ``--log-level`` apply.
    They arrive during ``poll()``/``flush()``, which every streamgen client calls."""
    demote_known_noise()
    return logging.getLogger("streamgen.librdkafka")


def quiet_diffusers() -> None:
    """No tqdm bars from diffusers, transformers or huggingface_hub (a worker writes a log, and
    loading or writing a pipeline takes seconds), and the filters above. Call it where diffusers
    is imported anyway, before a pipeline is loaded or built."""
    demote_known_noise()
    for module, switch_off in (
        ("diffusers.utils.logging", "disable_progress_bar"),
        ("transformers.utils.logging", "disable_progress_bar"),
        ("huggingface_hub.utils", "disable_progress_bars"),
    ):
        untyped: Any = importlib.import_module(module)
        getattr(untyped, switch_off)()
