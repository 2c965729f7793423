"""Retrieval evaluation: R@1/5/10/50, median and mean rank in six directions on a manifest split.

Clip i's text, audio and video are each other's only correct answers (as MSR-VTT 1k-A); rows
missing a modality drop out of the directions that need it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from train.data import ClipDataset, collate_skipping, read_manifest
from vlsa import VLSA
from vlsa.batch import to_device
from vlsa.vectors import TOWER_VECTORS

DIRECTIONS = {  # name -> (query modality, candidate modality)
    "text->video": ("text", "video"), "video->text": ("video", "text"),
    "text->audio": ("text", "audio"), "audio->text": ("audio", "text"),
    "audio->video": ("audio", "video"), "video->audio": ("video", "audio"),
}
RECALLS = (1, 5, 10, 50)


def eval_dataset(source: str | Path, config, split: str, seed: int | None = None, group: str | None = None):
    """A manifest (.jsonl), a shard folder or a folder of webdataset shards: its `split`, decoded
    as for evaluation: uniform frame times, or random ones drawn from `seed` (for --seeds).
    `group`: only a manifest's rows with that "group" field (the corpus's held-out sets). A split
    with no samples is a ValueError."""
    if Path(source).is_dir():
        from train.datasets.webdataset import TarClipDataset, is_tar_folder
        from train.shards import ShardDataset

        if group is not None:
            raise ValueError(f"{source}: a shard folder keeps no groups; evaluate its manifest with --group")
        folder_dataset = TarClipDataset if is_tar_folder(source) else ShardDataset
        dataset = folder_dataset(source, config, split=split, train=seed is not None, seed=seed or 0)
    else:
        rows = [r for r in read_manifest(source, split=split) if group is None or r.extra.get("group") == group]
        dataset = ClipDataset(rows, config, train=seed is not None, seed=seed or 0, random_caption=False)
    if len(dataset) == 0:
        raise ValueError(f"{source}: no samples in split {split!r}" + (f" and group {group!r}" if group else ""))
    return dataset


@torch.inference_mode()
def embed_dataset(model: VLSA, dataset, batch_size: int = 32, workers: int = 0,
                  audio_parts: bool = False) -> dict[str, torch.Tensor]:
    """Global embeddings of every sample: {"video", "audio", "text": (N, E), "has_*": (N,) bool,
    and "index" (N,) where the samples carry one; with a pretrained audio tower also its own
    vectors, TOWER_VECTORS (N, width), from the same run of the tower, and with `audio_parts`
    what the joint vector is made of (VLSAModel.embed_audio_vectors)}. A sample that fails to
    decode drops out of every direction."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("video", "audio", "text", "has_video",
                                                          "has_audio", "has_text")}
    for batch in loader:
        batch.pop("skipped")
        if "video" not in batch:
            continue
        batch = to_device(batch, model.device)
        out["video"].append(model.pool(model.encode_video(batch["video"]), "video").float().cpu())
        for key, vectors in model.embed_audio_vectors(model.audio_input(batch), audio_parts).items():
            out.setdefault(key, []).append(vectors.float().cpu())
            if key == TOWER_VECTORS:
                out.setdefault(f"has_{key}", []).append(batch["has_audio"].cpu())
        out["text"].append(model.embed_text_ids(batch["text"], batch["text_mask"]).float().cpu())
        for key in ("has_video", "has_audio", "has_text"):
            out[key].append(batch[key].cpu())
        if "index" in batch:  # the sample's position in the dataset, where it says (protocols)
            out.setdefault("index", []).append(batch["index"].cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _counts_at_best_truth(sim: torch.Tensor, truth: torch.Tensor | None):
    """Per row of a (Q, C) similarity matrix, at the row's best-scoring correct candidate (truth:
    (Q, C) bool, the diagonal when None): how many wrong candidates score above it, how many
    wrong ones score the same, and how many correct ones score the same (itself included)."""
    if truth is None:
        truth = torch.eye(*sim.shape, dtype=torch.bool, device=sim.device)
    best = sim.masked_fill(~truth, float("-inf")).amax(dim=1, keepdim=True)
    at_best = sim == best
    return ((sim > best) & ~truth).sum(1).double(), (at_best & ~truth).sum(1).double(), (at_best & truth).sum(1).double()


def ranks_of_truth(sim: torch.Tensor, truth: torch.Tensor | None = None) -> torch.Tensor:
    """1-based rank of each row's first correct candidate (the diagonal, or any of `truth`'s), ties
    split evenly: its expected rank under a random order of equal scores, h + (t + a + 1) / (a + 1)
    for h wrong candidates above, t wrong and a correct ones tied (one truth: the mean rank of the
    tied block). Counting ties for the truth would give a collapsed model a perfect R@1."""
    higher, tied, truths = _counts_at_best_truth(sim, truth)
    return higher + (tied + truths + 1) / (truths + 1)


def retrieval_metrics(sim: torch.Tensor, truth: torch.Tensor | None = None) -> dict[str, float]:
    """R@k, median and mean rank of a (Q, C) similarity matrix whose diagonal holds the truth, or
    whose `truth` (Q, C) bool marks each query's correct candidates (a clip's several captions: a
    hit when any of them is in the top k, as AudioCaps scores audio->text). Each is its expected
    value under a random order of equal scores (McSherry & Najork 2008): with h wrong candidates
    above the best truth, t wrong and a correct ones tied with it, the k - h places left miss every
    truth with probability prod_i (t - i) / (t + a - i); so constant scores give exactly chance,
    R@k = 100 k a / C for one truth (a = 1) and the hypergeometric for several."""
    higher, tied, truths = _counts_at_best_truth(sim, truth)
    metrics = {}
    for k in RECALLS:
        places = k - higher
        miss = torch.ones_like(higher)
        for i in range(k):
            left = tied - i  # wrong candidates still unplaced after i places
            step = torch.where(left > 0, left / (left + truths), torch.zeros_like(left))
            miss = torch.where(places > i, miss * step, miss)
        metrics[f"R@{k}"] = 100.0 * torch.where(places > 0, 1 - miss, torch.zeros_like(miss)).mean().item()
    ranks = ranks_of_truth(sim, truth)
    metrics["MedR"] = ranks.median().item()
    metrics["MeanR"] = ranks.mean().item()
    metrics["N"] = sim.shape[0]
    return metrics


def metrics_from_embeddings(emb: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    results = {}
    for name, (q, c) in DIRECTIONS.items():
        keep = emb[f"has_{q}"] & emb[f"has_{c}"]
        if keep.sum() < 2:
            continue
        results[name] = retrieval_metrics(emb[q][keep] @ emb[c][keep].T)
    return results


def evaluate(model: VLSA, source: str | Path, split: str = "test", batch_size: int = 32, workers: int = 0,
             seeds: int = 1, group: str | None = None) -> dict[str, dict[str, float]]:
    """Metrics per direction on `split` (and `group`) of a manifest or shard folder; with seeds > 1,
    the mean over that many random frame samplings (plus "R@1_std")."""
    def run(seed):
        dataset = eval_dataset(source, model.config, split, seed, group)
        return metrics_from_embeddings(embed_dataset(model, dataset, batch_size, workers))
    if seeds <= 1:
        return run(None)
    runs = [run(s) for s in range(seeds)]
    mean = {}
    for direction in runs[0]:
        mean[direction] = {k: statistics.fmean(r[direction][k] for r in runs) for k in runs[0][direction]}
        mean[direction]["R@1_std"] = statistics.pstdev(r[direction]["R@1"] for r in runs)
    return mean


def format_table(results: dict[str, dict[str, float]]) -> str:
    header = f"{'direction':<14}" + "".join(f"{k:>8}" for k in (*[f'R@{r}' for r in RECALLS], "MedR", "MeanR", "N"))
    lines = [header, "-" * len(header)]
    for name, m in results.items():
        cells = [f"{m[f'R@{r}']:8.1f}" for r in RECALLS] + [f"{m['MedR']:8.1f}", f"{m['MeanR']:8.1f}", f"{int(m['N']):8d}"]
        lines.append(f"{name:<14}" + "".join(cells))
    return "\n".join(lines)
