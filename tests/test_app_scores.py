"""app.scores: a score's strength against its query's scores over the library."""

import numpy as np
import pytest

from app.scores import Spread, strength_words


def test_scores_strength_counts_standard_deviations_above_the_querys_mean():
    """Catches a strength not divided by the spread, measured from another centre than the mean,
    or dividing by zero when every window scores alike."""
    spread = Spread.of(np.array([0.90, 0.92, 0.94, 0.96, 0.98]))  # a narrow, high band of cosines
    assert spread.mean == pytest.approx(0.94)
    assert Spread.of(np.array([0.0, 0.0, 0.0, 1.0])).mean == pytest.approx(0.25)  # the mean, not the median
    assert spread.strength(0.98) == pytest.approx(0.04 / np.std([0.90, 0.92, 0.94, 0.96, 0.98]))
    assert spread.strength(0.90) < 0 < spread.strength(0.95)
    assert Spread.of(np.full(4, 0.5)).strength(0.5) == 0.0  # every window alike: no strength
    assert Spread.of(np.zeros(0)).strength(0.3) == 0.0


def test_scores_strength_words_from_strong_to_weak():
    """Catches a threshold moved (each word starts exactly at its number of standard deviations)."""
    assert [strength_words(z) for z in (4.0, 3.0, 2.9, 2.5, 2.0, 1.9, 1.0, 0.9, -1.0)] == \
        ["strong match", "strong match", "good match", "good match", "good match", "fair match", "fair match",
         "weak match", "weak match"]
