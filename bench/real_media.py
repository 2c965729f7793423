"""Retrieval on real recordings, beside a plain MFCC anchor computed on the same files in the same run.

    python bench/real_media.py --checkpoint C --manifest corpus/manifest.jsonl --split test
    python bench/real_media.py --labels ../media/sounds/labels.jsonl          # folder-labelled sounds

Measures, per set of sounds:
- audio by example: for each sound, its 5 nearest other sounds by cosine, of the vectors the
  product's search by a sound compares (the audio tower's own with a tower checkpoint, else the
  joint ones: vlsa.vectors.example_modality); P@5 is the share of them with the same category. The anchor is a 40-MFCC mean/std vector per file with cosine
  similarity, the classic baseline for sound similarity;
- text -> audio and audio -> text, where the sounds have captions: a caption's relevant sounds are
  all sounds with that caption; R@k is the share of queries with a relevant answer in the top k,
  with chance (k relevant-out-of-N, averaged over queries) printed beside it.
Rows come from a manifest split (its "category" field labels a row; `--group` keeps one group)
or from a labels file of {"path", "category", "name"} lines (paths relative to the file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio

from vlsa import VLSA
from vlsa.checkpoint import shipped_checkpoint
from vlsa.media import MediaError, read_audio
from vlsa.vectors import example_modality

MFCC_RATE = 16000
MFCC_SECONDS = 10.0  # the anchor reads up to this much of each file


def rows_from_manifest(path: Path, split: str | None, group: str | None) -> list[dict]:
    root, rows = path.parent, []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if (split and row.get("split") != split) or (group and row.get("group") != group):
            continue
        media = row.get("audio") or row.get("video")
        rows.append({"path": str(root / media), "start": row.get("start") or 0.0, "end": row.get("end"),
                     "caption": row.get("text"), "category": row.get("category"),
                     # captions repeat across voices: each held-out voice is a set of its own
                     "set": "/".join(filter(None, [row.get("group") or row.get("source") or "all",
                                                   row.get("voice")]))})
    return rows


def rows_from_labels(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        rows.append({"path": str(path.parent.parent / d["path"]) if not Path(d["path"]).is_absolute()
                     else d["path"], "start": 0.0, "end": None, "caption": d.get("name"),
                     "category": d.get("category"), "set": d.get("source", "all")})
    return rows


def mfcc_vector(path: str, start: float, end: float | None, mfcc: torch.nn.Module) -> torch.Tensor:
    """40 MFCCs over the sound (its first MFCC_SECONDS; never padding past its end), their mean and
    standard deviation: (80,)."""
    wave = read_audio(path, start, end, sample_rate=MFCC_RATE)[: round(MFCC_SECONDS * MFCC_RATE)]
    if not torch.isfinite(wave).all() or wave.abs().max() == 0:
        raise MediaError(f"{path}: silent or not finite")
    m = mfcc(wave if wave.numel() >= 400 else F.pad(wave, (0, 400 - wave.numel())))
    return torch.cat([m.mean(-1), m.std(-1, correction=0)])


def precision_at(sim: torch.Tensor, labels: list[str], k: int = 5) -> float:
    """Mean share of each item's k nearest others (self excluded) that share its label."""
    sim = sim.clone().fill_diagonal_(float("-inf"))
    top = sim.topk(min(k, sim.shape[0] - 1), dim=1).indices
    hits = [sum(labels[j] == labels[i] for j in row.tolist()) / top.shape[1] for i, row in enumerate(top)]
    return 100.0 * sum(hits) / len(hits)


def caption_recalls(text: torch.Tensor, audio: torch.Tensor, captions: list[str]) -> dict:
    """text->audio and audio->text R@1/R@10 with relevance by identical caption, and chance.
    Ties count against the query (the pessimistic rank)."""
    unique = sorted(set(captions))
    index = {c: i for i, c in enumerate(unique)}
    relevant = torch.zeros(len(unique), len(captions), dtype=torch.bool)
    for j, c in enumerate(captions):
        relevant[index[c], j] = True
    rows = torch.stack([text[captions.index(c)] for c in unique])
    out = {}
    for name, sim, rel in (("text->audio", rows @ audio.T, relevant), ("audio->text", audio @ rows.T, relevant.T)):
        best = sim.masked_fill(~rel, float("-inf")).max(dim=1, keepdim=True).values
        rank = (sim.masked_fill(rel, float("-inf")) >= best).sum(1) + 1  # pessimistic over ties
        n_rel, n = rel.sum(1).float(), rel.shape[1]
        for k in (1, 10):
            chance = (1 - torch.stack([_none_in_top(n, int(r), k) for r in n_rel])).mean()
            out[f"{name} R@{k}"] = round(100.0 * (rank <= k).float().mean().item(), 1)
            out[f"{name} R@{k} chance"] = round(100.0 * chance.item(), 1)
    out["captions"] = len(unique)
    return out


def _none_in_top(n: int, relevant: int, k: int) -> torch.Tensor:
    """Probability that a random order of n items puts none of `relevant` in the first k."""
    p = 1.0
    for i in range(min(k, n)):
        p *= max(0.0, (n - relevant - i) / (n - i))
    return torch.tensor(p)


def evaluate(model: VLSA, rows: list[dict]) -> dict:
    mfcc = torchaudio.transforms.MFCC(sample_rate=MFCC_RATE, n_mfcc=40, melkwargs={"n_mels": 64})
    kept, skipped = [], 0
    anchors = []
    for row in rows:
        try:
            anchors.append(mfcc_vector(row["path"], row["start"], row["end"], mfcc))
            kept.append(row)
        except MediaError:
            skipped += 1
    items = [(r["path"], r["start"], r["end"]) for r in kept]
    vectors = model.embed_audio_all(items)
    audio = vectors["audio"]  # the joint vectors: what captions are matched with
    examples = vectors[example_modality(vectors)]  # what search by a sound example compares
    anchor = F.normalize(torch.stack(anchors), dim=-1)
    results = {"skipped": skipped}
    by_set = defaultdict(list)
    for i, r in enumerate(kept):
        by_set[r["set"]].append(i)
    for name, idx in sorted(by_set.items()):
        res: dict = {"sounds": len(idx)}
        labelled = [i for i in idx if kept[i]["category"]]
        if len(labelled) > 5:
            labels = [kept[i]["category"] for i in labelled]
            res["P@5 model"] = round(precision_at(examples[labelled] @ examples[labelled].T, labels), 1)
            res["P@5 mfcc"] = round(precision_at(anchor[labelled] @ anchor[labelled].T, labels), 1)
        captioned = [i for i in idx if kept[i]["caption"]]
        if len(captioned) > 10:
            captions = [kept[i]["caption"] for i in captioned]
            res.update(caption_recalls(model.embed_text(captions), audio[captioned], captions))
        results[name] = res
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--group", default=None)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.manifest and not args.labels:
        parser.error("give --manifest or --labels")
    rows = rows_from_manifest(args.manifest, args.split, args.group) if args.manifest else rows_from_labels(args.labels)
    model = VLSA.from_pretrained(args.checkpoint or shipped_checkpoint())
    results = evaluate(model, rows)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return
    print(format_results(results))


def format_results(results: dict) -> str:
    """One line per set: each recall with its multiple of chance, P@5 beside the MFCC anchor's."""
    lines = [f"{'set':<36}{'sounds':>7}{'capt.':>6}  {'t->a R@1':>13}{'t->a R@10':>14}{'a->t R@1':>13}"
             f"{'a->t R@10':>14}{'P@5':>7}{'MFCC':>7}"]
    for name, res in results.items():
        if not isinstance(res, dict):
            continue
        cells = []
        for key in ("text->audio R@1", "text->audio R@10", "audio->text R@1", "audio->text R@10"):
            if key in res:
                ratio = res[key] / res[f"{key} chance"] if res[f"{key} chance"] else float("nan")
                cells.append(f"{res[key]:>6.1f} ({ratio:>3.1f}x)")
            else:
                cells.append(" " * 13)
        p5 = f"{res['P@5 model']:>7.1f}{res['P@5 mfcc']:>7.1f}" if "P@5 model" in res else ""
        lines.append(f"{name:<36}{res['sounds']:>7}{res.get('captions', 0):>6}  " + " ".join(cells) + p5)
    lines.append(f"skipped (silent or unreadable): {results['skipped']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
