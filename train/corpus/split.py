"""The held-out split: whole sources, concepts whose words never occur in a training caption, and
espeak-ng voices never heard in training.

Every row gets "split" ("train" or "test") and, in the test split, "group": the eval subset it
belongs to. `check_split` asserts the promise the concept subset rests on.

Two modes (`Holdout`, `vlsa data corpus --holdout`): "packages", for development, holds out whole
packages (HELD_OUT_SOURCES, or the ones named), the held-out concepts and voices; "none", for the
checkpoint that ships, trains on everything permitted and holds out only what the demo shows as
unheard (the recordings train/corpus/demo_media.py names, group "demo") and the speech voices the
demo and the speech eval use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Whole packages held out for test: sounds from other games, recorded elsewhere.
HELD_OUT_SOURCES = {"supertuxkart-data": "heldout-package", "shared-media": "heldout-package"}
# Words whose concepts only the test split contains (animals, instruments, things).
HELD_OUT_CONCEPTS = ("sheep", "duck", "frog", "elephant", "pig", "wolf", "lion", "trumpet", "violin",
                     "banjo", "harp", "marimba", "accordion", "bagpipe", "clarinet", "anvil", "clock",
                     "helicopter", "thunder", "glass")
_CONCEPT = re.compile(r"\b(" + "|".join(HELD_OUT_CONCEPTS) + r")(s|es)?\b", re.I)


def held_out_concept(caption: str | None) -> str | None:
    """The held-out concept word a caption contains (plurals too), or None."""
    found = _CONCEPT.search(caption or "")
    return found.group(1).lower() if found else None


@dataclass(frozen=True)
class Holdout:
    """What the test split holds: whole packages (source -> group) and the held-out concepts, or
    (packages empty, concepts False) only the demo's own recordings, `demo`: (source, caption) pairs."""

    packages: tuple[tuple[str, str], ...] = tuple(HELD_OUT_SOURCES.items())
    concepts: bool = True
    demo: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, mode: str, packages: tuple[str, ...] = ()) -> Holdout:
        """"packages" (the default held-out packages, or these) or "none" (ship: only the demo's, and
        these packages if any: a package the shipped checkpoint never hears, to measure it on)."""
        if mode == "none":
            from train.corpus.demo_media import CLIPS

            held = tuple((p, "heldout-package") for p in packages)
            return cls(packages=held, concepts=False, demo=frozenset(CLIPS))
        if mode != "packages":
            raise ValueError(f"unknown holdout mode {mode!r} (packages or none)")
        return cls(packages=tuple((p, "heldout-package") for p in packages)) if packages else cls()


DEVELOPMENT = Holdout()


def assign(source: str, captions: list[str], held_out_voice: bool = False,
           holdout: Holdout = DEVELOPMENT) -> tuple[str, str | None]:
    """(split, group) of a row made from material of `source` with these captions (a mix has two)."""
    if held_out_voice:
        return "test", "speech-heldout-voice"
    if (source, captions[0]) in holdout.demo:
        return "test", "demo"
    groups = dict(holdout.packages)
    if source in groups:
        return "test", groups[source]
    if holdout.concepts and any(held_out_concept(c) for c in captions):
        return "test", "heldout-concept"
    return "train", None


def check_split(rows: list[dict], holdout: Holdout = DEVELOPMENT) -> None:
    """No training caption (nor another phrasing of it) may name a held-out concept, when concepts
    are held out; raises AssertionError naming the row."""
    if not holdout.concepts:
        return
    for row in rows:
        if row["split"] == "train":
            for text in [row.get("text"), *row.get("captions", [])]:
                word = held_out_concept(text)
                if word is not None:  # not `assert`: the check must survive python -O
                    raise AssertionError(f"training caption {text!r} names held-out concept {word!r}")
