"""Small tokenizers built here, so that writing a tiny or full-size random pipeline downloads
nothing: a byte-level CLIP BPE and a character-level T5 Unigram.

Real vocabularies hold tens of thousands of merged tokens; random text encoders gain nothing
from them, and building the files here keeps ``streamgen model write`` deterministic.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

__all__ = ["CLIP_END", "CLIP_START", "clip_tokenizer", "t5_tokenizer"]

CLIP_START, CLIP_END = "<|startoftext|>", "<|endoftext|>"


def clip_tokenizer(directory: Path, max_length: int = 77) -> Any:
    """A byte-level CLIP BPE vocabulary with no merges: every byte is a token."""
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for token in [*symbols, *(s + "</w>" for s in symbols), CLIP_START, CLIP_END]:
        vocab[token] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": CLIP_START,
        "eos_token": CLIP_END,
        "unk_token": CLIP_END,
        "pad_token": CLIP_END,
        "do_lower_case": True,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return CLIPTokenizer.from_pretrained(directory, local_files_only=True)


def t5_tokenizer(max_length: int) -> Any:
    """T5's layout (<pad>=0, </s>=1, <unk>=2, then pieces), with one piece per printable
    character, alone or starting a word: about 200 tokens instead of 32,100."""
    from transformers import T5Tokenizer

    chars = sorted(set(string.printable) - set(string.whitespace))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in chars] + [("\u2581" + c, -2.5) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


def _byte_symbols() -> list[str]:
    """The printable character byte-level BPE uses for each of the 256 byte values."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols: list[str] = []
    shifted = 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            # Bytes without a printable form are mapped past 255, in byte order.
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols
