"""What a score means: words for a cosine, calibrated on held-out pairs and kept with the checkpoint.

A small model's cosines sit in a band that differs between kinds of search (a text scores sounds
on another scale than a sound scores sounds) and between checkpoints, so a raw number says little
to a person, and neither does its place among the library's other scores (issue 33: a z-score
against the library called wrong results "good" and needed every window's score). What does say
something is how often a *wrong* result reaches that score. `vlsa calibrate` measures it on a
manifest's held-out rows, for each kind of search: the cosines of true pairs (a caption and its
own sound or picture; two rows with the same caption) and of false pairs (everything whose
captions differ). A score gets the words of the strictest level whose threshold it reaches:

    strong match   a false pair reaches this score at most 0.1% of the time
    good match     ... at most 1%
    fair match     ... at most 5%
    weak match     below that: wrong results score this high often

so the words need nothing but the score (never the library's other windows), and the file says
what share of true pairs reached each level on the data it was measured on. A score of at least
EXACT_COSINE is what was searched with itself: an "exact match". A checkpoint without a
calibration made for it (none, or one made for other weights) has no words: UNCALIBRATED, and
the cosine is shown instead.

The file is `calibration.json` in the checkpoint folder, beside config.json; it names the
fingerprint of the weights it was made for (VLSA.fingerprint(), what a catalog records), so a
checkpoint trained further does not keep words measured on its predecessor. It reads without
torch: `vlsa search` and the app need only the folder and the catalog's fingerprint.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CALIBRATION_NAME = "calibration.json"
FORMAT = 1
# (words, the most often a false pair may reach the level's threshold), strictest first.
LEVELS = (("strong match", 0.001), ("good match", 0.01), ("fair match", 0.05))
WEAK = "weak match"
# A result this close to its query is the query itself (a library file searched by its own sound,
# whose windows are cut and embedded as the indexer's were): its cosine is 1 but for float32
# rounding (~1e-6 over a few hundred dimensions), while two different recordings of even one
# synthetic tone stay further apart.
EXACT_COSINE = 1 - 1e-4
EXACT = "exact match"
UNCALIBRATED = "uncalibrated"
# Kinds of search: (query, result) modalities, as `vlsa eval` names its directions. The app's
# searches: words find pictures and sounds; a sound finds sounds and pictures; find-similar
# searches with a moment's picture and its sound (or its one vector, where it has only one).
# A checkpoint with an audio tower compares sounds with sounds by the tower's own vectors
# (vlsa.vectors.TOWER_VECTORS): "audio->audio_tower" is that search.
KINDS = ("text->video", "text->audio", "audio->audio", "video->video", "audio->video", "video->audio",
         "audio->audio_tower")
# Fewer false pairs than this cannot place the strictest threshold (1 in 1,000) at all.
MIN_FALSE_PAIRS = round(1 / LEVELS[0][1])
MIN_TRUE_PAIRS = 10  # fewer cannot say what share of true pairs a level holds
DIGITS = 6  # thresholds are stored rounded up to this many decimals (never below a false pair's score)


class CalibrationError(ValueError):
    """Pairs too few to calibrate, or a calibration file that cannot be used; one line."""


@dataclass(frozen=True)
class KindCalibration:
    """One kind of search: each level's least score, and the share of the measured true and false
    pairs that reached it (thresholds, true_share, false_share: one number per LEVELS, in order)."""

    thresholds: tuple[float, ...]
    true_share: tuple[float, ...]
    false_share: tuple[float, ...]
    true_pairs: int
    false_pairs: int

    def level(self, score: float) -> int | None:
        """The index in LEVELS of the strictest level `score` reaches; None: weak."""
        return next((i for i, least in enumerate(self.thresholds) if score >= least), None)

    def to_dict(self) -> dict:
        words = [w for w, _ in LEVELS]
        return {"true_pairs": self.true_pairs, "false_pairs": self.false_pairs,
                "thresholds": dict(zip(words, self.thresholds, strict=True)),
                "true_share": dict(zip(words, self.true_share, strict=True)),
                "false_share": dict(zip(words, self.false_share, strict=True))}

    @classmethod
    def from_dict(cls, d: dict) -> KindCalibration:
        words = [w for w, _ in LEVELS]
        values = {key: tuple(float(d[key][w]) for w in words) for key in ("thresholds", "true_share", "false_share")}
        kind = cls(**values, true_pairs=int(d["true_pairs"]), false_pairs=int(d["false_pairs"]))
        if not all(math.isfinite(t) for t in kind.thresholds) or list(kind.thresholds) != sorted(kind.thresholds,
                                                                                                  reverse=True):
            raise ValueError(f"thresholds not finite and falling from strong to fair: {kind.thresholds}")
        return kind


def calibrate_kind(true_scores: np.ndarray, false_scores: np.ndarray) -> KindCalibration:
    """Thresholds from the cosines of one kind's true and false pairs: each level's least score is
    just above the false score that only `rate` of the false pairs exceed, so a false pair reaches
    it at most that often (ties included). CalibrationError when the pairs are too few."""
    true_scores = np.asarray(true_scores, np.float64).ravel()
    false_scores = np.sort(np.asarray(false_scores, np.float64).ravel())[::-1]  # highest first
    if len(false_scores) < MIN_FALSE_PAIRS or len(true_scores) < MIN_TRUE_PAIRS:
        raise CalibrationError(f"{len(true_scores)} true and {len(false_scores)} false pairs; need at least "
                               f"{MIN_TRUE_PAIRS} and {MIN_FALSE_PAIRS}")
    thresholds = []
    for _, rate in LEVELS:
        allowed = int(rate * len(false_scores))  # false pairs that may reach the level
        thresholds.append(_round_up(false_scores[allowed]))  # above the first one that may not
    return KindCalibration(
        thresholds=tuple(thresholds),
        true_share=tuple(round(float((true_scores >= t).mean()), 4) for t in thresholds),
        false_share=tuple(round(float((false_scores >= t).mean()), 5) for t in thresholds),
        true_pairs=len(true_scores), false_pairs=len(false_scores))


def _round_up(score: float) -> float:
    """The least number of DIGITS decimals that is strictly above `score`."""
    scale = 10 ** DIGITS
    return (math.floor(score * scale) + 1) / scale


@dataclass(frozen=True)
class Calibration:
    """A checkpoint's calibration: per kind of search, the thresholds of the words."""

    fingerprint: str  # VLSA.fingerprint() of the weights it was measured with
    made_on: dict  # the data: manifest, split, group, rows
    kinds: dict[str, KindCalibration]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "fingerprint": self.fingerprint, "made_on": self.made_on,
                "levels": {w: rate for w, rate in LEVELS},
                "kinds": {k: v.to_dict() for k, v in self.kinds.items()}}

    def save(self, folder: str | os.PathLike) -> Path:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / CALIBRATION_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path


def match_words(score: float, kind: str, calibration: Calibration | None) -> str:
    """'exact match' for a cosine of at least EXACT_COSINE; else the words of the strictest level
    the score reaches for this kind of search ('strong match' .. 'weak match'); UNCALIBRATED
    without a calibration of that kind."""
    if score >= EXACT_COSINE:
        return EXACT
    levels = calibration.kinds.get(kind) if calibration is not None else None
    if levels is None:
        return UNCALIBRATED
    level = levels.level(score)
    return WEAK if level is None else LEVELS[level][0]


def parse_calibration(data: object) -> Calibration:
    """A Calibration from the file's JSON; ValueError naming what is wrong."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a calibration of format {FORMAT}")
    if data.get("levels") != dict(LEVELS):
        raise ValueError("made with other levels than this version's")
    try:
        kinds = {k: KindCalibration.from_dict(v) for k, v in data["kinds"].items() if k in KINDS}
        return Calibration(str(data["fingerprint"]), dict(data.get("made_on") or {}), kinds)
    except (KeyError, TypeError, AttributeError, OverflowError) as exc:  # OverflowError: int(1e400)
        raise ValueError(f"missing or bad field {exc}") from None


def read_calibration(folder: str | os.PathLike | None, fingerprint: str) -> Calibration | None:
    """The calibration in a checkpoint folder if it was made for these weights (`fingerprint`);
    None, with the reason logged, when there is none, it is unreadable or it was made for other
    weights: words measured on another model would be made up for this one."""
    if folder is None:
        return None
    path = Path(folder) / CALIBRATION_NAME
    try:
        calibration = parse_calibration(json.loads(path.read_text()))
    except FileNotFoundError:
        log.info("%s: no %s; results have no strength words (vlsa calibrate makes one)", folder, CALIBRATION_NAME)
        return None
    except (OSError, ValueError) as exc:  # unreadable, not JSON, not a calibration
        log.warning("%s: not used: %s", path, exc)
        return None
    if calibration.fingerprint != fingerprint:
        log.warning("%s: not used: made for weights %s, these are %s (run vlsa calibrate again)",
                    path, calibration.fingerprint, fingerprint)
        return None
    return calibration
