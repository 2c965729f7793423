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

DIRECTIONS = {  # name -> (query modality, candidate modality)
    "text->video": ("text", "video"), "video->text": ("video", "text"),
    "text->audio": ("text", "audio"), "audio->text": ("audio", "text"),
    "audio->video": ("audio", "video"), "video->audio": ("video", "audio"),
}
RECALLS = (1, 5, 10, 50)


def eval_dataset(source: str | Path, config, split: str, seed: int | None = None, group: str | None = None):
    """A manifest (.jsonl) or a shard folder's `split`, decoded as for evaluation: uniform frame
    times, or random ones drawn from `seed` (for --seeds). `group`: only a manifest's rows with
    that "group" field (the corpus's held-out sets). A split with no samples is a ValueError."""
    if Path(source).is_dir():
        if group is not None:
            raise ValueError(f"{source}: a shard folder keeps no groups; evaluate its manifest with --group")
        from train.shards import ShardDataset

        dataset = ShardDataset(source, config, split=split, train=seed is not None, seed=seed or 0)
    else:
        rows = [r for r in read_manifest(source, split=split) if group is None or r.extra.get("group") == group]
        dataset = ClipDataset(rows, config, train=seed is not None, seed=seed or 0, random_caption=False)
    if len(dataset) == 0:
        raise ValueError(f"{source}: no samples in split {split!r}" + (f" and group {group!r}" if group else ""))
    return dataset


@torch.inference_mode()
def embed_dataset(model: VLSA, dataset, batch_size: int = 32, workers: int = 0) -> dict[str, torch.Tensor]:
    """Global embeddings of every sample: {"video", "audio", "text": (N, E), "has_*": (N,) bool}.
    A sample that fails to decode drops out of every direction."""
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
        out["audio"].append(model.pool(model.encode_audio(batch["audio"]), "audio").float().cpu())
        out["text"].append(model.embed_text_ids(batch["text"], batch["text_mask"]).float().cpu())
        for key in ("has_video", "has_audio", "has_text"):
            out[key].append(batch[key].cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _higher_and_tied(sim: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of a (N, N) similarity matrix: how many candidates score above the diagonal entry,
    and how many others score the same."""
    truth = sim.diagonal()[:, None]
    return (sim > truth).sum(dim=1), (sim == truth).sum(dim=1) - 1


def ranks_of_truth(sim: torch.Tensor) -> torch.Tensor:
    """1-based rank of the diagonal entry in each row, ties split evenly: the mean rank of the
    tied block (its expected rank under a random order of equal scores). Counting ties for the
    truth would give a collapsed model, whose scores are all equal, a perfect R@1."""
    higher, tied = _higher_and_tied(sim)
    return higher.double() + 1 + tied.double() / 2


def retrieval_metrics(sim: torch.Tensor) -> dict[str, float]:
    """R@k, median and mean rank of a (N, N) similarity matrix whose diagonal holds the truth.
    Each is its expected value under a random order of equal scores (McSherry & Najork 2008):
    a row's truth tied with t others just below h higher scores is a hit at k with probability
    (k - h) / (t + 1), clipped to [0, 1]; so constant scores give exactly chance, R@k = 100 k / N."""
    higher, tied = _higher_and_tied(sim)
    hit = {k: ((k - higher.double()) / (tied.double() + 1)).clamp(0, 1) for k in RECALLS}
    metrics = {f"R@{k}": 100.0 * hit[k].mean().item() for k in RECALLS}
    ranks = ranks_of_truth(sim)
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
