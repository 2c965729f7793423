"""What a result's score means for its query: how far it stands above the rest of the library.

A cosine similarity of a small model sits in a narrow band that moves with the query (for one
query unrelated sounds score 0.85-0.99, for another 0.2), so the raw number says little to a
person. What does say something is how a result compares with everything else the same query
scored: its strength is the number of standard deviations its score lies above the mean of the
query's scores over every window of the library (of the same modality: picture and sound vectors
score on different scales), named in words by STRENGTH_WORDS; a result that is the query itself
(cosine ~1) is an "exact match" whatever its strength. The raw cosine stays in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (least strength, words), strongest first. On a bell-shaped spread of scores 1, 2 and 3 standard
# deviations above the mean are the top 16%, 2.3% and 0.13% of the library.
STRENGTH_WORDS = ((3.0, "strong match"), (2.0, "good match"), (1.0, "fair match"))
WEAK = "weak match"
# A result this close to its query is the query itself (a library file searched by its own sound,
# whose windows are cut and embedded as the indexer's were): its cosine is 1 but for float32
# rounding (~1e-6 over a few hundred dimensions), while two different recordings of even one
# synthetic tone stay further apart. Its z-score can still be low where the whole library scores
# high for the query, so this rule comes before the strength words.
EXACT_COSINE = 1 - 1e-4
EXACT = "exact match"


@dataclass(frozen=True)
class Spread:
    """Mean and standard deviation of one query's scores over the library's windows."""

    mean: float
    std: float

    @classmethod
    def of(cls, scores: np.ndarray) -> Spread:
        scores = np.asarray(scores, np.float64)
        return cls(float(scores.mean()), float(scores.std())) if scores.size else cls(0.0, 0.0)

    def strength(self, score: float) -> float:
        """Standard deviations of `score` above the mean; 0 when every window scores alike."""
        return (score - self.mean) / self.std if self.std > 1e-9 else 0.0


def strength_words(strength: float, score: float | None = None) -> str:
    """'exact match' for a cosine `score` of at least EXACT_COSINE; otherwise, by the strength,
    'strong match', 'good match', 'fair match' or 'weak match'."""
    if score is not None and score >= EXACT_COSINE:
        return EXACT
    return next((words for least, words in STRENGTH_WORDS if strength >= least), WEAK)
