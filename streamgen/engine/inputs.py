"""What a request reads from the store before it runs: its img2img init image and its LoRA
adapters. Either may fail the request alone (not retried); an unreachable store raises
:class:`~streamgen.errors.StoreUnavailable`, and the worker repeats the whole batch later."""

from __future__ import annotations

import logging

import torch

from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.validation import clip
from streamgen.engine import img2img
from streamgen.engine.adapters import AdapterLoader, AdapterStats, ScaledAdapter
from streamgen.engine.families import PipelineParts
from streamgen.engine.requests import not_retryable
from streamgen.errors import InvalidRequest, StoreUnavailable
from streamgen.store.base import ObjectTooLarge

__all__ = ["StoredInputs"]

log = logging.getLogger(__name__)


class StoredInputs:
    """``init_images`` reads init images and ``adapters`` adapter files (both
    ``InitImageReader``: the allowed prefixes and a size cap each); without one, every request
    that needs it fails."""

    def __init__(
        self, init_images: img2img.InitImageSource | None, adapters: AdapterLoader | None
    ) -> None:
        self._init_images = init_images
        self.adapter_loader = adapters
        # Batches with adapters run eagerly although a fast path is configured (their hooks
        # are Python, called every step): counted for streamgen_adapter_eager_batches_total,
        # and said once per model in the log.
        self.eager_batches = 0
        self._eager_models: set[str] = set()

    def adapters(
        self, request: GenerationRequest, parts: PipelineParts
    ) -> tuple[ScaledAdapter, ...]:
        """The request's adapters, loaded for its model, or AdapterUnfit naming the first that
        cannot be used."""
        if not request.adapters:
            return ()
        if self.adapter_loader is None:
            raise not_retryable("adapters need an object store; none is set", InvalidRequest.code)
        return self.adapter_loader.resolve(request, parts.name, parts.denoiser, parts.dtype)

    def ran_eagerly(self, model: str, fast_paths: list[str]) -> None:
        """A batch with adapters ran eagerly; ``fast_paths``: the settings it did without."""
        if not fast_paths:
            return
        self.eager_batches += 1
        if model not in self._eager_models:
            self._eager_models.add(model)
            log.warning(
                "model %s: batches with LoRA adapters run eagerly, without %s (the adapters' "
                "per-row hooks are Python); batches without adapters keep them",
                model,
                ", ".join(fast_paths),
            )

    def adapter_stats(self) -> AdapterStats:
        cache = None if self.adapter_loader is None else self.adapter_loader.cache
        eager = self.eager_batches
        if cache is None:
            return AdapterStats(eager, 0, 0, 0, 0, 0)
        return AdapterStats(
            eager, cache.loads, cache.hits, cache.evictions, len(cache), cache.nbytes
        )

    def init_image(self, request: GenerationRequest) -> torch.Tensor:
        """The init image as pixels, or InitImageInvalid / a refusal for this request alone."""
        if self._init_images is None:
            raise img2img.InitImageInvalid("img2img needs an object store; none is set")
        uri = request.init_image_uri or ""
        try:
            data = self._init_images.read(uri)
        except StoreUnavailable:
            raise
        except InvalidRequest as exc:  # not under an allowed prefix
            raise not_retryable(str(exc), exc.code) from None
        except FileNotFoundError:
            raise img2img.InitImageInvalid(f"init image {clip(uri)!r} does not exist") from None
        except ObjectTooLarge as exc:
            raise img2img.InitImageInvalid(
                f"init image {clip(uri)!r} is larger than "
                f"store.init_image_max_bytes={exc.limit} bytes"
            ) from None
        except Exception as exc:  # refused by the store (access denied, a bad name, ...)
            log.warning("init image %r of %s cannot be read: %s", uri, request.request_id, exc)
            raise img2img.InitImageInvalid(f"init image {clip(uri)!r} cannot be read") from exc
        return img2img.decode_init_image(data, width=request.width, height=request.height)
