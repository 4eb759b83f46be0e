"""Per-request LoRA adapters: read and checked (``lora_file``), placed in the model (``fit``),
cached (``cache``), loaded from the store (``loader``) and applied row by row inside a batch
(``apply``)."""

from streamgen.engine.adapters.apply import (
    AdapterLoadTime,
    AdapterStats,
    LoadedAdapter,
    RowAdapters,
    ScaledAdapter,
    Uncompiled,
    adapters_applied,
)
from streamgen.engine.adapters.cache import AdapterCache
from streamgen.engine.adapters.fit import AdapterUnfit, LoraLayer
from streamgen.engine.adapters.loader import AdapterLoader
from streamgen.engine.adapters.lora_file import lora_layers

__all__ = [
    "AdapterCache",
    "AdapterLoadTime",
    "AdapterLoader",
    "AdapterStats",
    "AdapterUnfit",
    "LoadedAdapter",
    "LoraLayer",
    "RowAdapters",
    "ScaledAdapter",
    "Uncompiled",
    "adapters_applied",
    "lora_layers",
]
