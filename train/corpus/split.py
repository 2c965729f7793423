"""The held-out split: whole sources, concepts whose words never occur in a training caption, and
espeak-ng voices never heard in training.

Every row gets "split" ("train" or "test") and, in the test split, "group": the eval subset it
belongs to. `check_split` asserts the promise the concept subset rests on.
"""

from __future__ import annotations

import re

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


def assign(source: str, captions: list[str], held_out_voice: bool = False) -> tuple[str, str | None]:
    """(split, group) of a row made from material of `source` with these captions (a mix has two)."""
    if held_out_voice:
        return "test", "speech-heldout-voice"
    if source in HELD_OUT_SOURCES:
        return "test", HELD_OUT_SOURCES[source]
    if any(held_out_concept(c) for c in captions):
        return "test", "heldout-concept"
    return "train", None


def check_split(rows: list[dict]) -> None:
    """No training caption may name a held-out concept; raises AssertionError naming the row."""
    for row in rows:
        if row["split"] == "train":
            word = held_out_concept(row.get("text"))
            if word is not None:  # not `assert`: the check must survive python -O
                raise AssertionError(f"training caption {row.get('text')!r} names held-out concept {word!r}")
