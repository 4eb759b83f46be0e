"""A request's adapters, read from the store, checked against its model and cached on its device.

The I/O side of :mod:`streamgen.engine.adapters`: the file comes through the same reader as
img2img init images (the allowed prefixes, symlinks resolved, a size cap: here
``store.adapter_max_bytes``), its sha256 is taken from the bytes read, and what can go wrong
with one adapter fails its request alone as INVALID_REQUEST naming it. An unreachable store
raises :class:`~streamgen.errors.StoreUnavailable`: the worker retries the whole batch.

Cached by model and URI (``engine.adapter_cache_bytes``): an adapter object is read once while
it stays cached, so, like the images streamgen writes, a published adapter should never be
rewritten under the same name (publish a new name instead); its result names the sha256 of the
bytes its images were made with either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import clip
from streamgen.engine.adapters.apply import AdapterLoadTime, LoadedAdapter, ScaledAdapter
from streamgen.engine.adapters.cache import AdapterCache
from streamgen.engine.adapters.lora_file import AdapterUnfit, lora_layers
from streamgen.engine.img2img import InitImageSource
from streamgen.errors import InvalidRequest, StoreUnavailable
from streamgen.store.base import ObjectTooLarge

__all__ = ["AdapterLoader"]

log = logging.getLogger(__name__)


class AdapterLoader:
    """``files`` reads objects under the allowed prefixes (``InitImageReader`` with
    ``max_bytes=store.adapter_max_bytes``); ``clock`` times each load's stages."""

    def __init__(
        self,
        files: InitImageSource,
        *,
        cache_bytes: int,
        device: torch.device,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._files = files
        self._device = device
        self._clock = clock
        self.cache: AdapterCache[LoadedAdapter] = AdapterCache(cache_bytes)

    def resolve(
        self, request: GenerationRequest, model: str, denoiser: Any, dtype: torch.dtype
    ) -> tuple[ScaledAdapter, ...]:
        """The request's adapters for ``model``; AdapterUnfit naming the first that cannot be
        used (INVALID_REQUEST, not retried), or StoreUnavailable (transient)."""
        resolved = []
        for i, ref in enumerate(request.adapters):
            load = partial(self._load, ref.uri, denoiser, dtype)
            try:
                # One entry per object, however the request spelled its URI.
                adapter = self.cache.get((model, self._files.canonical(ref.uri)), load)
            except AdapterUnfit as exc:
                raise AdapterUnfit(f"adapters[{i}] {clip(ref.uri)!r} {exc}") from None
            resolved.append(ScaledAdapter(adapter, float(ref.scale)))
        return tuple(resolved)

    def _load(self, uri: str, denoiser: Any, dtype: torch.dtype) -> LoadedAdapter:
        start = self._clock()
        data = self._read(uri)
        fetched = self._clock()
        layers = lora_layers(data, denoiser)
        sha256 = hashlib.sha256(data).hexdigest()
        parsed = self._clock()
        on_device = {
            name: dataclasses.replace(
                layer, down=layer.down.to(self._device, dtype), up=layer.up.to(self._device, dtype)
            )
            for name, layer in layers.items()
        }
        if self._device.type == "cuda":  # once per load: the copy's own time, not a kernel's
            torch.cuda.synchronize(self._device)
        took = AdapterLoadTime(fetched - start, parsed - fetched, self._clock() - parsed)
        adapter = LoadedAdapter(uri, sha256, on_device, took)
        log.info(
            "loaded adapter %s (%d layers, %d bytes) in %.3f s: read %.3f s, parsed %.3f s, "
            "copied to the device %.3f s",
            uri, len(layers), adapter.nbytes, took.total_s, took.fetch_s, took.parse_s, took.copy_s,
        )  # fmt: skip
        return adapter

    def _read(self, uri: str) -> bytes:
        try:
            return self._files.read(uri)
        except StoreUnavailable:
            raise
        except InvalidRequest as exc:  # not under an allowed prefix (a symlink out, say)
            raise AdapterUnfit(f"is not allowed: {exc.allowed}") from None
        except FileNotFoundError:
            raise AdapterUnfit("does not exist") from None
        except ObjectTooLarge as exc:
            raise AdapterUnfit(
                f"is larger than store.adapter_max_bytes={exc.limit} bytes"
            ) from None
        except Exception as exc:  # refused by the store (access denied, a bad name, ...)
            log.warning("adapter %r cannot be read: %s", uri, exc)
            raise AdapterUnfit(f"cannot be read: {type(exc).__name__}") from exc
