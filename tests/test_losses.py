"""The loss functions of vlsa/losses.py on tiny hand-made tensors: the values worked out by hand,
the drawn negatives' distribution (the trained model's terms: test_model.py; their cross-rank
gather: test_train_distributed.py)."""

import math

import pytest
import torch

from vlsa.losses import contrastive_loss, draw_negatives, matching_loss

DRAWS = 3000


def softplus(z: float) -> float:
    return math.log1p(math.exp(z))


def test_draw_negatives_draws_each_other_valid_row_uniformly():
    """Over many draws each valid row's negative is every other valid row about equally often,
    never itself and never an invalid row; an invalid row (and a lone valid one) gets itself.
    Catches a draw that always takes the next row (or any fixed offset) and one that can return
    the row itself or a row without the modality. The bound is five standard deviations of a
    frequency over DRAWS independent draws, not a measured number."""
    valid = torch.tensor([True, True, False, True, True])
    g = torch.Generator().manual_seed(0)
    drawn = torch.stack([draw_negatives(valid, torch.rand(5, generator=g)) for _ in range(DRAWS)])
    assert (drawn[:, 2] == 2).all()  # the invalid row keeps itself
    others = [0, 1, 3, 4]
    p = 1 / (len(others) - 1)
    bound = 5 * math.sqrt(p * (1 - p) / DRAWS)
    for row in others:
        counts = torch.bincount(drawn[:, row], minlength=5).double() / DRAWS
        assert counts[row] == 0 and counts[2] == 0, (row, counts)
        for other in others:
            if other != row:
                assert abs(counts[other] - p) < bound, (row, other, counts)
    lone = torch.tensor([False, True, False])
    assert draw_negatives(lone, torch.rand(3, generator=g)).tolist() == [0, 1, 2]


def test_matching_loss_is_the_hand_worked_binary_cross_entropy():
    """Two valid rows (each one's negative must be the other) and an invalid third: with a dot
    product for the head, row 0 scores its pair 2 and its negative 0, row 1 its pair -1 and its
    negative 0; the loss is the mean over the valid rows of (softplus(-pos) + softplus(neg)) / 2.
    Catches the positive and negative labels swapped, the invalid row counted in the mean or
    drawn as a negative (its huge values would dominate), and a one-sided term."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [50.0, 50.0]])
    y = torch.tensor([[2.0, 0.0], [0.0, -1.0], [50.0, 50.0]])
    valid = torch.tensor([True, True, False])
    loss = matching_loss(lambda a, b: (a * b).sum(-1), x, y, valid)
    expected = ((softplus(-2) + softplus(0)) / 2 + (softplus(1) + softplus(0)) / 2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_is_the_hand_worked_symmetric_infonce():
    """x = (e0, e1), y = (e0, (0.6, 0.8)) at logit scale 1: x->y rows score (1, 0.6) and (0, 0.8),
    y->x rows (1, 0) and (0.6, 0.8), each true pair's cross-entropy log(1 + exp(other - own)),
    averaged over both directions and the valid rows. A third, invalid row holds a vector that
    would be a strong negative for both. Catches one direction alone, a missing or doubled logit
    scale, and an invalid row used as anchor or negative."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])
    valid = torch.tensor([True, True, False])
    loss = contrastive_loss(x, y, torch.tensor(1.0), valid)
    terms = [softplus(0.6 - 1), softplus(0 - 0.8), softplus(0 - 1), softplus(0.6 - 0.8)]
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-6)
    doubled = contrastive_loss(x, y, torch.tensor(2.0), valid)
    terms = [softplus(2 * (0.6 - 1)), softplus(2 * (0 - 0.8)), softplus(2 * (0 - 1)), softplus(2 * (0.6 - 0.8))]
    assert doubled.item() == pytest.approx(sum(terms) / 4, rel=1e-6)
