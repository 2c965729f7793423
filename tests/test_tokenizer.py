"""vlsa.tokenizer: the offline CLIP BPE tokenizer and the Hugging Face fallback's errors."""

import socket
import sys
import types

import pytest
import torch

from vlsa import tokenizer as tok_module
from vlsa.config import TextConfig
from vlsa.tokenizer import build_tokenizer


@pytest.fixture
def clip():
    return build_tokenizer(TextConfig(max_len=12))


def test_clip_tokenizer_builds_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tok_module._clip_bpe.cache_clear()
    tok_module._cached.cache_clear()
    tokenizer = build_tokenizer(TextConfig())
    ids, mask = tokenizer(["a dog barks", "rain on a tin roof"])
    assert ids.shape == mask.shape == (2, 40)
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert tokenizer.name == "clip"


def test_clip_tokenizer_masks_padding(clip):
    ids, mask = clip(["a dog barks", ""])
    n = len(clip.bpe.encode("a dog barks")) + 2
    assert mask[0].tolist() == [True] * n + [False] * (12 - n)
    assert ids[0, 0] == clip.start_id and ids[0, n - 1] == clip.end_id
    assert (ids[0, n:] == clip.pad_id).all()
    assert ids[1, :2].tolist() == [clip.start_id, clip.end_id] and mask[1].sum() == 2


def test_clip_tokenizer_truncation_keeps_end_token(clip):
    ids, mask = clip(["one two three four five six seven eight nine ten eleven twelve thirteen"])
    assert mask.all()
    assert ids[0, 0] == clip.start_id and ids[0, -1] == clip.end_id
    assert ids[0, 1:-1].tolist() == clip.bpe.encode("one two three four five six seven eight nine ten")


def test_clip_tokenizer_matches_open_clip(clip):
    from open_clip.tokenizer import SimpleTokenizer

    texts = ["A man is slicing tomatoes!", "x " * 30]
    reference = SimpleTokenizer()(texts, context_length=12)  # pads with 0 too
    ids, _ = clip(texts)
    assert torch.equal(ids, reference)


def test_clip_tokenizer_special_ids(clip):
    assert clip.vocab_size == 49409 and clip.mask_id == 49408 and clip.pad_id == 0
    assert {clip.start_id, clip.end_id} == {49406, 49407}
    assert clip.special_ids == frozenset({0, 49406, 49407, 49408})
    ids, _ = clip(["every id fits the embedding table ✓ 日本語"])
    assert int(ids.max()) < clip.vocab_size


def test_build_tokenizer_is_cached():
    assert build_tokenizer(TextConfig()) is build_tokenizer(TextConfig())
    assert build_tokenizer(TextConfig(max_len=8)).max_len == 8


def test_build_tokenizer_rejects_a_too_small_vocab():
    with pytest.raises(ValueError, match="49409 ids .* text.vocab_size is 30522"):
        build_tokenizer(TextConfig(vocab_size=30522))


def test_build_tokenizer_unknown_hf_name_is_a_clear_error():
    with pytest.raises(ValueError) as info:
        build_tokenizer(TextConfig(tokenizer="no-such-org/no-such-tokenizer"))
    message = str(info.value)
    assert "no-such-org/no-such-tokenizer" in message and "\n" not in message
    assert "transformers" in message or "not available locally" in message


class FakeBert:
    """Stands in for a local BERT tokenizer (transformers is not a dependency)."""

    pad_token_id, mask_token_id, all_special_ids = 0, 103, [0, 100, 101, 102, 103]

    def __len__(self):
        return 30522

    def __call__(self, text, truncation, max_length):
        ids = [101, *[1000 + len(w) for w in text.split()], 102]
        return {"input_ids": ids[: max_length - 1] + [102] if len(ids) > max_length else ids}


def fake_transformers(tokenizers):
    def from_pretrained(name, local_files_only):
        assert local_files_only
        if name not in tokenizers:
            raise OSError(f"{name} is not in the local cache\nsecond line")
        return tokenizers[name]

    return types.SimpleNamespace(AutoTokenizer=types.SimpleNamespace(from_pretrained=from_pretrained))


def test_hf_tokenizer_uses_its_own_special_ids(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", fake_transformers({"bert-local": FakeBert()}))
    tok_module._cached.cache_clear()
    tokenizer = build_tokenizer(TextConfig(tokenizer="bert-local", max_len=6, vocab_size=30522))
    assert (tokenizer.vocab_size, tokenizer.mask_id, tokenizer.pad_id) == (30522, 103, 0)
    assert tokenizer.special_ids == frozenset({0, 100, 101, 102, 103})
    ids, mask = tokenizer(["a dog", "one two three four five six"])
    assert ids[0].tolist() == [101, 1001, 1003, 102, 0, 0] and mask[0].tolist() == [True] * 4 + [False] * 2
    assert ids[1, -1] == 102 and mask[1].all()
    with pytest.raises(ValueError) as info:
        build_tokenizer(TextConfig(tokenizer="bert-missing"))
    assert "bert-missing" in str(info.value) and "not available locally" in str(info.value)
    assert "\n" not in str(info.value)
    tok_module._cached.cache_clear()
