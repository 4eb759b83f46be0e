"""What ``engine.fuse_qkv`` leaves behind: the unfused projections, dropped once fused.

diffusers' ``fuse_projections`` concatenates an attention's query, key and value weights into one
new linear layer and keeps the three it read from (for ``unfuse_qkv_projections``, which the
engine never calls), so fusing every attention of FLUX.1 [dev] would hold about 2.1 billion
parameters (4 GiB in bf16) twice. Each fused layer's sources are dropped instead; a processor that
still reached for one would fail (tests/unit/engine/test_fuse_qkv.py runs every family so).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FUSED_SOURCES", "drop_unfused_projections"]

# fused layer -> the layers it was made from. Cross-attention fuses key and value only: its
# query still runs through ``to_q``.
FUSED_SOURCES = {
    "to_qkv": ("to_q", "to_k", "to_v"),
    "to_kv": ("to_k", "to_v"),
    "to_added_qkv": ("add_q_proj", "add_k_proj", "add_v_proj"),
}


def drop_unfused_projections(model: Any) -> int:
    """Delete the projections that a fused layer of ``model`` replaces; how many were."""
    dropped = 0
    for module in model.modules():
        for fused, sources in FUSED_SOURCES.items():
            if getattr(module, fused, None) is None:
                continue
            for name in sources:
                if getattr(module, name, None) is not None:
                    delattr(module, name)
                    dropped += 1
    return dropped
