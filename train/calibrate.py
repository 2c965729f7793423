"""`vlsa calibrate`: measure what a checkpoint's scores mean on held-out pairs (vlsa/calibration.py).

    vlsa calibrate --checkpoint vlsa/assets/real --manifest data/corpus/manifest.jsonl --split test

Each row of the manifest's split is embedded as `vlsa eval` embeds it (train/evaluate.py); then,
for each kind of search, every query row is scored against every candidate row: a pair is true
when the query's caption is one of the candidate's captions (a text and its own sound or picture;
two rows with a caption in common), false when no caption is shared. A row is never paired with
itself in one modality (that is an exact match, cosine 1). Rows whose captions differ but mean
the same ("a dog barks", "the sound of a dog" as two rows) count as false pairs: the thresholds
err towards stricter words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from train.data import Row, manifest_identity
from train.protocols import embed_clips, protocol_rows
from vlsa import VLSA
from vlsa.calibration import KINDS, Calibration, CalibrationError, calibrate_kind
from vlsa.vectors import TOWER_VECTORS


def _normal(caption: str | None) -> str:
    return (caption or "").strip().lower()


def caption_matrices(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
    """(own text, every caption): two (N, C) bool matrices over the rows' C distinct captions (lower
    case, trimmed); a row's own text is what it asks as a text search, every caption what it answers."""
    every = [{_normal(c) for c in [row.text, *row.captions]} - {""} for row in rows]
    columns = {c: i for i, c in enumerate(sorted(set().union(*every)))}
    own, answers = np.zeros((2, len(rows), len(columns)), bool)
    for i, (row, captions) in enumerate(zip(rows, every, strict=True)):
        answers[i, [columns[c] for c in captions]] = True
        if _normal(row.text):
            own[i, columns[_normal(row.text)]] = True
    return own, answers


def pair_scores(emb: dict[str, torch.Tensor], rows: list[Row]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """kind -> (true pair cosines, false pair cosines), from embed_clips' embeddings of `rows` (its
    "index" says which row each embedding is; "text" is the row's own text)."""
    decoded = [rows[i] for i in emb["index"].tolist()]
    own, answers = caption_matrices(decoded)
    pairs = {}
    for kind in KINDS:
        query, candidate = kind.split("->")
        if candidate not in emb:  # the tower's kind, of a checkpoint without one
            continue
        asked = candidate if candidate == TOWER_VECTORS else query  # a sound asks the tower with its own tower vector
        q, c = emb[f"has_{asked}"].numpy(), emb[f"has_{candidate}"].numpy()
        asks = own if query == "text" else answers
        truth = (asks[q].astype(np.float32) @ answers[c].T.astype(np.float32)) > 0
        sim = (emb[asked][q] @ emb[candidate][c].T).numpy()
        counted = np.ones_like(truth)
        if asked == candidate:  # a row against itself is an exact match, not a pair
            counted = ~(np.flatnonzero(q)[:, None] == np.flatnonzero(c)[None, :])
        pairs[kind] = (sim[truth & counted], sim[~truth & counted])
    return pairs


def calibrate(model: VLSA, manifest: str | Path, split: str = "test", group: str | None = None,
              batch_size: int = 32, workers: int = 0) -> tuple[Calibration, list[str]]:
    """The model's calibration on a manifest's split (and group), and the kinds of search left out
    for want of pairs, each with its reason; CalibrationError when no kind has enough."""
    rows = protocol_rows(manifest, split, group)
    emb = embed_clips(model, rows, None, batch_size, workers)  # each row's own text, and a tower's vectors
    kinds, left_out = {}, []
    for kind, (true, false) in pair_scores(emb, rows).items():
        try:
            kinds[kind] = calibrate_kind(true, false)
        except CalibrationError as exc:
            left_out.append(f"{kind}: {exc}")
    if not kinds:
        raise CalibrationError(f"{manifest} [{split}]: no kind of search has enough pairs ({'; '.join(left_out)})")
    made_on = {**manifest_identity(manifest), "split": split, "group": group, "rows": len(rows),
               "decoded": len(emb["index"])}
    return Calibration(model.fingerprint(), made_on, kinds), left_out


def format_calibration(calibration: Calibration) -> str:
    """A table: per kind, the pairs, each level's least score and the share of true pairs reaching it."""
    lines = [f"{'search':<14}{'true':>7}{'false':>9}   {'strong':>14}{'good':>14}{'fair':>14}   "
             "(least score, share of true pairs)"]
    for kind, k in calibration.kinds.items():
        cells = "".join(f"{t:>8.3f} {s:>4.0%}" for t, s in zip(k.thresholds, k.true_share, strict=True))
        lines.append(f"{kind:<14}{k.true_pairs:>7}{k.false_pairs:>9}   {cells}")
    return "\n".join(lines)
