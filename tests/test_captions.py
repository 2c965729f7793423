"""Several captions a clip: a manifest row's "captions" list (MSR-VTT's 20, AudioCaps' 5)."""

from __future__ import annotations

import json

import pytest
import torch
from mediagen import make_video

from train.data import ClipDataset, parse_manifest, read_manifest
from train.manifest import merge_manifests
from vlsa.config import preset_config
from vlsa.tokenizer import build_tokenizer

CAPTIONS = ["a dog barks", "a man sings", "rain falls on a roof", "a car passes", "a bell rings"]


@pytest.fixture(scope="module")
def clip_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    make_video(root / "a.mp4", seconds=0.5, size=(64, 64))
    rows = [{"video": "a.mp4", "captions": CAPTIONS},                          # text: the first caption
            {"video": "a.mp4", "text": "alone"},                               # one caption, as before
            {"video": "a.mp4", "captions": "a dog barks"},                     # not a list
            {"video": "a.mp4", "text": "x", "captions": ["fine", 3]},          # not all strings
            {"video": "a.mp4", "captions": [], "split": "test"}]               # none: no caption
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_manifest_captions_parsed_and_bad_values_skipped(clip_manifest):
    """A "captions" list is read beside "text" (which defaults to its first caption); a value that
    is not a list of strings skips the row, named with its line, as other bad rows are.
    Catches: a string taken as a list of characters, a list with a number let through."""
    rows, rejected = parse_manifest(clip_manifest)
    assert [(n, reason) for n, reason in rejected] == [(3, "captions is not a list of strings"),
                                                       (4, "captions is not a list of strings")]
    assert rows[0].captions == CAPTIONS and rows[0].text == CAPTIONS[0]
    assert rows[1].captions == [] and rows[1].text == "alone"
    assert rows[2].captions == [] and rows[2].text is None
    merged, skipped = merge_manifests([clip_manifest])
    assert skipped == 2 and merged[0]["captions"] == CAPTIONS  # merging keeps every caption


def _caption_of(sample: dict, tokenizer) -> str:
    ids, _ = tokenizer(CAPTIONS)
    return next(c for c, row in zip(CAPTIONS, ids, strict=True) if torch.equal(row, sample["text"]))


def test_training_draws_a_caption_per_load_reproducibly(clip_manifest):
    """Training draws one of a clip's captions per load from the sample's own seeded generator
    (seed, epoch, index): the same draw in any worker and after a resume, another caption in
    another epoch; evaluation reads the first. Catches: always the first caption in training, an
    unseeded draw (random.choice), a random caption in evaluation's random-frame seeds."""
    config = preset_config("tiny")
    tokenizer = build_tokenizer(config.text)
    rows = read_manifest(clip_manifest, split="train")[:1]
    draws = []
    for epoch in range(8):
        dataset = ClipDataset(rows, config, train=True, seed=3)
        dataset.epoch = epoch
        first = _caption_of(dataset[0], tokenizer)
        assert _caption_of(dataset[0], tokenizer) == first  # the same load, the same caption
        draws.append(first)
    assert len(set(draws)) > 1, draws
    assert _caption_of(ClipDataset(rows, config, train=True, seed=3)[0], tokenizer) == draws[0]
    evaluation = ClipDataset(rows, config, train=True, seed=5, random_caption=False)
    assert all(_caption_of(evaluation[0], tokenizer) == CAPTIONS[0] for _ in range(2))


def test_shards_keep_every_caption_and_training_draws_from_them(clip_manifest, tmp_path):
    """A shard keeps a clip's captions; training from shards draws among them as from the
    manifest, evaluation reads the first. Catches shards that keep only the first caption, or a
    shard reader that ignores them."""
    from train.shards import ShardDataset, write_shards

    config = preset_config("tiny")
    tokenizer = build_tokenizer(config.text)
    write_shards(clip_manifest, tmp_path / "shards", config)
    draws = set()
    for epoch in range(8):
        dataset = ShardDataset(tmp_path / "shards", config, split="train", train=True, seed=3)
        dataset.epoch = epoch
        draws.add(_caption_of(dataset[0], tokenizer))
    assert len(draws) > 1, draws
    evaluation = ShardDataset(tmp_path / "shards", config, split="train", train=False)
    assert _caption_of(evaluation[0], tokenizer) == CAPTIONS[0]
