"""Which seed each image of a request uses."""

from __future__ import annotations

import hashlib

import torch

from streamgen.contracts.request import GenerationRequest

__all__ = ["generator_for", "request_seed"]

_SEED_SPACE = 2**64


def request_seed(request: GenerationRequest) -> int:
    """The request's seed, or one derived from its id so that re-processing repeats the image."""
    if request.seed is not None:
        return request.seed
    digest = hashlib.sha256(request.request_id.encode("utf-8")).digest()
    # 63 bits: stays a valid Avro long when reported back in the result.
    return int.from_bytes(digest[:8], "big") >> 1


def generator_for(seed: int, image_index: int) -> torch.Generator:
    """A CPU generator for image ``image_index`` of a request (seed + index).

    CPU generators give the same noise whatever the accelerator, and one generator per image
    is what makes an image independent of the batch it is generated in.
    """
    return torch.Generator("cpu").manual_seed((seed + image_index) % _SEED_SPACE)
