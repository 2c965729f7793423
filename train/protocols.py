"""The paper's evaluation protocols (`vlsa eval --protocol NAME`): each benchmark scored as it is
scored in the literature, the mean and spread over seeds of random frame sampling (the paper
reports the mean of 3), printed beside the paper's numbers.

Input is a manifest's split (and group): one row a clip, its captions under "captions" (all of
them) and "text" (the first, or the only one).
- msrvtt-1ka, lsmdc: text->video, one caption a video (its "text"): MSR-VTT's 1k-A test set is
  1,000 videos with one sentence each (JSFusion's split), LSMDC's test set 1,000 clips.
- audiocaps, sounddescs: text<->audio over every caption of every clip (AudioCaps has 5 a clip):
  text->audio, each caption is a query whose clip is the answer; audio->text, each clip is a
  query, a hit at k when any of its captions is among the top k (its rank: its best caption's).
- youcook2: audio->video, a clip's soundtrack finds its own video among the split's.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch.utils.data import Dataset

from train.benchmarks import DEFAULT_SEEDS, PROTOCOLS, Protocol
from train.data import ClipDataset, Row, read_manifest
from train.evaluate import embed_dataset, retrieval_metrics
from vlsa import VLSA


class _Indexed(Dataset):
    """A dataset whose samples say their own index, so captions stay with their clip when a
    sample that fails to decode drops out of the batch."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        return sample if "skipped" in sample else {**sample, "index": torch.tensor(index)}


def protocol_rows(source: str | Path, split: str, group: str | None) -> list[Row]:
    if Path(source).is_dir():
        raise ValueError(f"{source}: protocols read a manifest (.jsonl), whose rows keep every caption; "
                         "shards keep one")
    rows = [r for r in read_manifest(source, split=split) if group is None or r.extra.get("group") == group]
    if not rows:
        raise ValueError(f"{source}: no rows in split {split!r}" + (f" and group {group!r}" if group else ""))
    return rows


def embed_clips(model: VLSA, rows: list[Row], seed: int | None, batch_size: int = 32, workers: int = 0,
                audio_parts: bool = False) -> dict:
    """Video and audio embeddings of the clips that decode, frames drawn at random from `seed` (None:
    at evaluation's uniform times): {"video", "audio": (N, E), "has_video", "has_audio": (N,) bool,
    "index": (N,) row of each}."""
    dataset = ClipDataset(rows, model.config, train=seed is not None, seed=seed or 0, random_caption=False)
    return embed_dataset(model, _Indexed(dataset), batch_size, workers, audio_parts)


def caption_queries(rows: list[Row], all_captions: bool) -> tuple[list[str], list[int]]:
    """The protocol's captions and the row each belongs to."""
    texts, owners = [], []
    for i, row in enumerate(rows):
        captions = (row.captions or [row.text]) if all_captions else [row.text]
        for caption in captions:
            if caption and caption.strip():
                texts.append(caption)
                owners.append(i)
    return texts, owners


def protocol_metrics(protocol: Protocol, clips: dict, text: torch.Tensor, owners: torch.Tensor) -> dict:
    """Metrics per direction from one seed's clip embeddings and the captions' (text (M, E), owners
    (M,): the row of each caption)."""
    results = {}
    for direction in protocol.directions:
        query, candidate = direction.split("->")
        if "text" in (query, candidate):
            modality = candidate if query == "text" else query
            keep = clips[f"has_{modality}"]
            rows, emb = clips["index"][keep], clips[modality][keep]
            asked = torch.isin(owners, rows)  # captions whose clip decoded with this modality
            truth = owners[asked][:, None] == rows[None, :]
            sim = text[asked] @ emb.T
            if query != "text":  # a clip whose captions are all empty asks nothing
                answered = truth.any(dim=0)
                sim, truth = sim.T[answered], truth.T[answered]
        else:
            keep = clips[f"has_{query}"] & clips[f"has_{candidate}"]
            sim, truth = clips[query][keep] @ clips[candidate][keep].T, None
        if sim.shape[0] < 2:
            raise ValueError(f"{direction}: fewer than two queries (a clip without {query} or {candidate}, "
                             "or that does not decode, drops out)")
        results[direction] = retrieval_metrics(sim, truth)
    return results


def evaluate_protocol(model: VLSA, source: str | Path, name: str, split: str = "test", group: str | None = None,
                      seeds: int = DEFAULT_SEEDS, batch_size: int = 32, workers: int = 0) -> dict:
    """The protocol on a manifest's split: {"protocol", "clips", "decoded" (clips that decoded),
    "captions", "seeds": [per-seed metrics], "mean", "std"}, mean and std (population) per
    direction and metric."""
    protocol = PROTOCOLS[name]
    rows = protocol_rows(source, split, group)
    captions, owners = caption_queries(rows, protocol.all_captions)
    text = model.embed_text(captions) if captions else torch.empty(0, model.config.embed_dim)
    owners_t = torch.tensor(owners, dtype=torch.long)
    runs, decoded = [], 0
    for seed in range(seeds):
        clips = embed_clips(model, rows, seed, batch_size, workers)
        decoded = len(clips["index"])
        runs.append(protocol_metrics(protocol, clips, text, owners_t))
    mean = {d: {k: statistics.fmean(r[d][k] for r in runs) for k in runs[0][d]} for d in runs[0]}
    std = {d: {k: statistics.pstdev(r[d][k] for r in runs) for k in runs[0][d]} for d in runs[0]}
    return {"protocol": name, "split": split, "group": group, "clips": len(rows), "decoded": decoded,
            "captions": len(captions),
            "seeds": runs, "mean": mean, "std": std}
