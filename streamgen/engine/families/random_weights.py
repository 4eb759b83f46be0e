"""What every writer of a random-weight pipeline does the same way, whatever its family: build
modules on the device in the target dtype, give CLIP its special token ids, save and tidy up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from streamgen.engine.families.tokenizers import CLIP_END, CLIP_START

__all__ = ["CLIP_SCRATCH", "building", "clip_special_ids", "save_pipeline"]

# Where a writer builds the CLIP tokenizer's files, inside its output, then removes them.
CLIP_SCRATCH = "_clip_tokenizer"


@contextmanager
def building(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Modules made inside are made on ``device`` directly in ``dtype``: a published
    transformer with T5-XXL holds over ten billion parameters, too many to build in float32
    first on one GPU."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(default)


def clip_special_ids(tokenizer: Any) -> dict[str, Any]:
    """A CLIP text config's start, end and padding ids, as ``tokenizers.clip_tokenizer`` has
    them."""
    end = tokenizer.convert_tokens_to_ids(CLIP_END)
    return {
        "bos_token_id": tokenizer.convert_tokens_to_ids(CLIP_START),
        "eos_token_id": end,
        "pad_token_id": end,
    }


def save_pipeline(pipeline: Any, out: Path, scratch: Path) -> Path:
    """``save_pretrained`` to ``out``, then remove ``scratch`` (the files a tokenizer was built
    from: the saved pipeline holds its own copy)."""
    pipeline.save_pretrained(out, safe_serialization=True)
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()
    return out
