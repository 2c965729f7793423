"""Which attributes of a synthetic clip a checkpoint's embeddings carry, and which ones its
wrong first hits get wrong.

    python bench/attribute_probe.py CHECKPOINT MANIFEST [--shards DIR] [--split test]

MANIFEST is a `vlsa data synth` manifest (it records each clip's colour, shape, size and
motion); --shards reads the same clips pre-decoded. Prints, for text->video and audio->video,
the attribute sets in which the wrong first hit differs from the right clip, and per attribute
the nearest-centroid accuracy of each modality's embeddings (how linearly the attribute can be
read from them; chance is one over the number of values).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.evaluate import embed_dataset, eval_dataset  # noqa: E402
from vlsa import VLSA  # noqa: E402

ATTRIBUTES = ("colour", "shape", "size", "motion")


def wrong_first_hits(emb, rows, query: str) -> collections.Counter:
    """For each query whose first video hit is wrong: the attributes in which the two differ."""
    top = (emb[query] @ emb["video"].T).argmax(1).tolist()
    counts = collections.Counter()
    for i, j in enumerate(top):
        if i != j:
            a, b = rows[i]["attributes"], rows[j]["attributes"]
            counts["+".join(k for k in ATTRIBUTES if a[k] != b[k]) or "(none)"] += 1
    return counts


def centroid_accuracy(e: torch.Tensor, labels: list[str]) -> float:
    values = sorted(set(labels))
    y = torch.tensor([values.index(v) for v in labels])
    centroids = torch.stack([e[y == c].mean(0) for c in range(len(values))])
    return ((e @ centroids.T).argmax(1) == y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("manifest")
    ap.add_argument("--shards", help="read the clips from these shards instead of decoding the manifest")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.manifest)]
    rows = [r for r in rows if r.get("split", "train") == args.split]
    model = VLSA.from_pretrained(args.checkpoint)
    emb = embed_dataset(model, eval_dataset(args.shards or args.manifest, model.config, args.split))
    if len(emb["video"]) != len(rows):
        sys.exit(f"{len(emb['video'])} clips embedded, {len(rows)} in the manifest: some failed to decode")
    for query in ("text", "audio"):
        counts = wrong_first_hits(emb, rows, query)
        print(f"{query}->video: {sum(counts.values())} of {len(rows)} first hits wrong; they differ in "
              + ", ".join(f"{k} {n}" for k, n in counts.most_common()))
    print(f"{'attribute':<10}" + "".join(f"{m:>8}" for m in ("video", "audio", "text")) + "  chance")
    for k in ATTRIBUTES:
        labels = [r["attributes"][k] for r in rows]
        accs = [centroid_accuracy(emb[m], labels) for m in ("video", "audio", "text")]
        print(f"{k:<10}" + "".join(f"{a:8.2f}" for a in accs) + f"  {1 / len(set(labels)):6.2f}")


if __name__ == "__main__":
    main()
