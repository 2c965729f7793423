"""The frozen aisfx sound encoder on its own: audio-by-example P@5 beside the 40-MFCC anchor, and how
much a 16 kHz copy of each sound (the real-media corpus stores 16 kHz AAC) moves its embedding.

    python bench/audio_tower_probe.py --labels ../shared/media/sounds/labels.jsonl

Per sound: its first MFCC_SECONDS (as bench/real_media.py's anchor), decoded at 44.1 kHz, and the
same decoded at 16 kHz then resampled to 44.1 kHz as vlsa.audio_tower.tower_input does; each
through the frozen encoder (its 2-s blocks every second, mean-pooled). P@5 per set of sounds
(bench/real_media.py's precision_at: the share of each sound's 5 nearest others with its
category); "band-limited cosine": the cosine between a sound's two embeddings.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_media import MFCC_RATE, MFCC_SECONDS, mfcc_vector, precision_at, rows_from_labels  # noqa: E402

from vlsa.audio_tower import PRETRAINED, SoundEncoder  # noqa: E402
from vlsa.media import MediaError, read_audio  # noqa: E402

CORPUS_RATE = 16000  # the rate the real-media corpus stores its sounds at


def tower_vectors(encoder: SoundEncoder, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(native, band-limited) embeddings of a sound's first MFCC_SECONDS."""
    rate = PRETRAINED[encoder.name].sample_rate
    native = read_audio(path, 0.0, None, rate)[: round(MFCC_SECONDS * rate)]
    low = read_audio(path, 0.0, None, CORPUS_RATE)[: round(MFCC_SECONDS * CORPUS_RATE)]
    low = torchaudio.functional.resample(low, CORPUS_RATE, rate)
    return encoder(native[None])[0], encoder(low[None])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="labels.jsonl of {path, category, name}")
    parser.add_argument("--tower", default="aisfx", choices=sorted(PRETRAINED))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    encoder = SoundEncoder(args.tower)
    mfcc = torchaudio.transforms.MFCC(sample_rate=MFCC_RATE, n_mfcc=40, melkwargs={"n_mels": 64})
    kept, anchors, native, low = [], [], [], []
    for row in rows_from_labels(args.labels):
        try:
            anchors.append(mfcc_vector(row["path"], 0.0, None, mfcc))
            a, b = tower_vectors(encoder, row["path"])
        except MediaError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            anchors = anchors[: len(kept)]
            continue
        kept.append(row)
        native.append(a)
        low.append(b)
    anchor, native, low = F.normalize(torch.stack(anchors), dim=-1), torch.stack(native), torch.stack(low)
    by_set = defaultdict(list)
    for i, r in enumerate(kept):
        by_set[r["set"]].append(i)
    by_set["all"] = list(range(len(kept)))
    results = {}
    for name, idx in sorted(by_set.items()):
        labels = [kept[i]["category"] for i in idx]
        p_tower, p_mfcc = (precision_at(x[idx] @ x[idx].T, labels) for x in (native, anchor))
        cos = (native[idx] * low[idx]).sum(-1)
        results[name] = {
            "sounds": len(idx), "P@5 tower": round(p_tower, 1), "P@5 mfcc": round(p_mfcc, 1),
            "tower / mfcc": round(p_tower / p_mfcc, 2),
            "P@5 tower, 16 kHz copy": round(precision_at(low[idx] @ low[idx].T, labels), 1),
            "band-limited cosine mean": round(float(cos.mean()), 3),
            "band-limited cosine min": round(float(cos.min()), 3),
            "band-limited cosine p10": round(float(cos.quantile(0.1)), 3),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
