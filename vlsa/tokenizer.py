"""Text tokenizers: captions -> (token ids, attention mask) of a fixed length.

"clip" (the default) is open_clip's byte-level BPE, whose vocabulary ships inside the
open-clip-torch wheel, so it works offline. Any other name is a Hugging Face tokenizer that must
already be on this machine (`local_files_only`); nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from vlsa.config import TextConfig
from vlsa.text_query import fast_tokenizer
from vlsa.text_tower import resolve_tokenizer_name

log = logging.getLogger(__name__)

CLIP_VOCAB = 49408  # ids 0..49407: 49406 BPE tokens + <start_of_text> + <end_of_text>


@functools.lru_cache(maxsize=1)
def _clip_bpe() -> Any:
    """open_clip's SimpleTokenizer, built once: it parses the gzipped merges file in the wheel.

    open_clip/tokenizer.py is loaded on its own (it imports nothing else of open_clip): `import
    open_clip.tokenizer` would first run the package's __init__, which imports torchvision,
    transformers and every model, most of the time a `vlsa search` takes (docs/CATALOG.md).
    """
    module = sys.modules.get("open_clip.tokenizer") or _load_clip_tokenizer_module()
    # The module builds a default SimpleTokenizer as it loads; a second would parse the file again.
    return getattr(module, "_tokenizer", None) or module.SimpleTokenizer()


def _load_clip_tokenizer_module() -> ModuleType:
    found = importlib.util.find_spec("open_clip")  # locates the files without running its code
    if found is None or not found.submodule_search_locations:
        raise ValueError("tokenizer 'clip' needs the package open-clip-torch (pip install open-clip-torch)")
    path = Path(next(iter(found.submodule_search_locations))) / "tokenizer.py"
    spec = importlib.util.spec_from_file_location("vlsa._open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Tokenizer:
    """texts -> (ids LongTensor (B, max_len), attention_mask BoolTensor (B, max_len)).

    Every sequence is start token + text + end token, truncated to `max_len` keeping the end token,
    then padded with `pad_id` (attention_mask False on padding).

    Attributes: `name`; `max_len`; `vocab_size`, the ids the model must embed, [MASK] included;
    `mask_id`; `pad_id`; `special_ids`, ids never chosen for masking (start, end, pad, mask...).
    """

    name: str
    max_len: int
    vocab_size: int
    mask_id: int
    pad_id: int
    special_ids: frozenset[int]

    def encode(self, text: str) -> list[int]:
        """Ids of one text with its start and end tokens, at most `max_len` of them."""
        raise NotImplementedError

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]  # a lone caption is the commonest slip; it is not a list of characters
        ids = torch.full((len(texts), self.max_len), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(texts), self.max_len), dtype=torch.bool)
        for row, text in enumerate(texts):
            tokens = self.encode(text)
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, : len(tokens)] = True
        return ids, mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_len={self.max_len}, vocab_size={self.vocab_size})"


class ClipTokenizer(Tokenizer):
    """open_clip's BPE. CLIP has no [MASK] token, so id 49408 is added for it (vocab_size 49409).

    The pad id is 0, which is also the BPE token "!": padding is told apart by the attention mask,
    never by the id.
    """

    def __init__(self, max_len: int = 40):
        if max_len < 2:
            raise ValueError(f"text.max_len must leave room for the start and end tokens, not {max_len}")
        self.bpe = _clip_bpe()
        self.name, self.max_len = "clip", max_len
        self.start_id, self.end_id = self.bpe.sot_token_id, self.bpe.eot_token_id
        self.pad_id = 0
        self.mask_id = CLIP_VOCAB
        self.vocab_size = CLIP_VOCAB + 1
        self.special_ids = frozenset({self.start_id, self.end_id, self.pad_id, self.mask_id})

    def encode(self, text: str) -> list[int]:
        tokens = self.bpe.encode(text)[: self.max_len - 2]  # truncation keeps the end token
        return [self.start_id, *tokens, self.end_id]


class HFTokenizer(Tokenizer):
    """A Hugging Face tokenizer already on this machine (a hub name in the local cache, or a path)."""

    def __init__(self, name: str, max_len: int = 40):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ValueError(f"tokenizer {name!r} needs the transformers package, which is not "
                             f"installed (pip install transformers), or use tokenizer 'clip'") from None
        try:
            self.hf = AutoTokenizer.from_pretrained(name, local_files_only=True)
        except Exception as e:  # OSError when absent; hub and parsing errors vary by version
            raise ValueError(f"tokenizer {name!r} is not available locally "
                             f"({type(e).__name__}); nothing is downloaded, use a local path or 'clip'") from e
        self.name, self.max_len = name, max_len
        hf = self.hf
        self.pad_id = hf.pad_token_id if hf.pad_token_id is not None else 0
        # Without a mask token (GPT-2-like vocabularies) one id is appended for [MASK].
        self.mask_id = hf.mask_token_id if hf.mask_token_id is not None else len(hf)
        self.vocab_size = max(len(hf), self.mask_id + 1)
        self.special_ids = frozenset({*hf.all_special_ids, self.pad_id, self.mask_id})
        # A fast tokenizer's rules as JSON: what a text search without torch reads them from (the
        # ONNX export records it), so both paths cut and encode words alike (vlsa/text_query.py).
        backend = getattr(hf, "backend_tokenizer", None)
        self.spec = backend.to_str() if backend is not None else None
        self.fast = fast_tokenizer(self.spec, max_len) if backend is not None else None

    def encode(self, text: str) -> list[int]:
        if self.fast is not None:
            return self.fast.encode(text).ids
        return self.hf(text, truncation=True, max_length=self.max_len)["input_ids"]


@functools.lru_cache(maxsize=8)
def _cached(name: str, max_len: int) -> Tokenizer:
    return ClipTokenizer(max_len) if name == "clip" else HFTokenizer(resolve_tokenizer_name(name), max_len)


def build_tokenizer(cfg: TextConfig) -> Tokenizer:
    """The tokenizer named by cfg.tokenizer, producing cfg.max_len ids per text.

    Raises ValueError if it needs more ids than the model embeds (cfg.vocab_size).
    """
    tokenizer = _cached(cfg.tokenizer, cfg.max_len)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise ValueError(f"tokenizer {cfg.tokenizer!r} has {tokenizer.vocab_size} ids (with [MASK]) "
                         f"but text.vocab_size is {cfg.vocab_size}")
    return tokenizer
