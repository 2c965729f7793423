"""Losses: masked reconstruction, masked-token prediction, symmetric InfoNCE, binary matching and
the distillation term (text and audio teachers).

Each returns a scalar tensor. Rows that lack a modality are left out through `valid` masks, never
by indexing with a data-dependent shape inside the caller (which would sync the host on CUDA).

Each takes an optional `gather` (train/distributed.py) so that under torch.distributed every rank
computes its share of the joined batch's loss: the contrastive and matching negatives come from
every rank, gradients flowing back through the gather, and every mean is over the joined batch's
count (DDP averages the ranks' gradients, so each rank divides its sum by the mean count per
rank). Two processes then give the gradients of one process on the joined batch, term by term.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

IGNORE = -100  # label of tokens not chosen for masked-token prediction (PyTorch's default)

# gather(x) -> (x gathered from all ranks along dim 0, offset of this rank's rows in the result)
Gather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]


def no_gather(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    return x, 0


def masked_mean(values: torch.Tensor, weights: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
    """Mean of `values` under 0/1 `weights`; 0 (with a gradient path) when no weight is set. With
    `gather`, this rank's share of the mean over every rank's weights: its sum over the ranks'
    mean count, so that DDP's average over ranks is the joined batch's mean even when the ranks
    hold different numbers of valid rows or chosen tokens."""
    # where, not multiply: a left-out row may hold inf (its own pair was blocked), and 0 * inf is nan
    kept = torch.where(weights, values, torch.zeros_like(values))
    counts, _ = (gather or no_gather)(weights.sum().float().reshape(1))
    return kept.sum() / (counts.sum().clamp(min=1) / counts.shape[0])


def _gather_pairs(x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, gather: Gather | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Every rank's rows of x, y and valid (bool), and the offset of this rank's rows in them."""
    gather = gather or no_gather
    all_x, offset = gather(x)
    all_y, _ = gather(y)
    all_valid, _ = gather(valid.to(x.dtype))
    return all_x, all_y, all_valid > 0.5, offset


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, removed: torch.Tensor,
                        row_valid: torch.Tensor | None = None, norm_targets: bool = True,
                        gather: Gather | None = None) -> torch.Tensor:
    """MSE on the removed patches only (MAE).

    pred, target: (B, N, P) patch values; removed: (B, N) bool, True where the patch was masked;
    row_valid: (B,) bool, False for rows whose modality is missing (silent audio, no video).
    norm_targets: normalise each target patch to zero mean, unit variance (MAE's norm_pix_loss).
    """
    target = target.float()
    if norm_targets:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # (B, N)
    weights = removed.clone()
    if row_valid is not None:
        weights &= row_valid[:, None]
    return masked_mean(per_patch, weights, gather)


def masked_token_loss(logits: torch.Tensor, labels: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
    """Cross-entropy on the chosen tokens; labels (B, L) hold IGNORE everywhere else (BERT)."""
    chosen = labels != IGNORE
    per_token = F.cross_entropy(logits.float().flatten(0, 1), labels.clamp(min=0).flatten(),
                                reduction="none").view_as(labels)
    return masked_mean(per_token, chosen, gather)


def contrastive_loss(x: torch.Tensor, y: torch.Tensor, logit_scale: torch.Tensor,
                     valid: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised x (B, D) and y (B, D), pair i <-> i.

    valid: (B,) bool, rows where both modalities exist; invalid rows are neither anchors nor
    negatives. With `gather`, each rank scores its own rows against every rank's rows.
    """
    all_x, all_y, all_valid, offset = _gather_pairs(x, y, valid, gather)
    labels = torch.arange(x.shape[0], device=x.device) + offset
    blocked = torch.finfo(torch.float32).min
    # similarities in float32 even under bf16 autocast: the softmax runs at temperatures down to
    # 0.01, and the blocked value does not exist in bf16
    with torch.autocast(x.device.type, enabled=False):
        logits_xy = (logit_scale * x.float() @ all_y.float().T).masked_fill(~all_valid[None, :], blocked)
        logits_yx = (logit_scale * y.float() @ all_x.float().T).masked_fill(~all_valid[None, :], blocked)
    loss_xy = F.cross_entropy(logits_xy, labels, reduction="none")
    loss_yx = F.cross_entropy(logits_yx, labels, reduction="none")
    return masked_mean((loss_xy + loss_yx) / 2, valid, gather)


def draw_negatives(valid: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """For each row i, the index of another valid row j != i (uniform), or i itself if none.

    valid: (B,) bool; noise: (B,) uniform in [0, 1), the draw. Works by ranking valid rows and
    shifting each by a random non-zero offset within the valid set, so no host synchronisation
    is needed.
    """
    b = valid.shape[0]
    n = valid.sum()
    # rank[i]: position of row i among valid rows; order[k]: the row at rank k (valid first)
    order = torch.argsort((~valid).to(torch.int8), stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(b, device=valid.device)
    offset = 1 + (noise * (n - 1).clamp(min=1)).long()
    partner = order[(rank + offset) % n.clamp(min=1)]
    return torch.where(valid & (n > 1), partner, torch.arange(b, device=valid.device))


def matching_loss(head: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor, valid: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
    """BCE of the binary matching head on the true pairs (x_i, y_i) and drawn pairs (x_i, y_j),
    j drawn from the whole (gathered) batch: each rank draws the noise of its own rows, and the
    gathered noise is the same draw on every rank."""
    gather = gather or no_gather
    all_y, offset = gather(y)
    all_valid = gather(valid.to(y.dtype))[0] > 0.5
    noise, _ = gather(torch.rand(x.shape[0], device=x.device))
    partner = draw_negatives(all_valid, noise)[offset:offset + x.shape[0]]
    pos = head(x, y)
    neg = head(x, all_y[partner])
    loss = (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none")
            + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg), reduction="none")) / 2
    return masked_mean(loss, valid & (all_valid.sum() > 1), gather)


def similarity_distillation(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor,
                            temperature: float, gather: Gather | None = None) -> torch.Tensor:
    """Teach the student's similarities between sentences from a pretrained teacher's (relational
    distillation): for each valid row, the KL divergence from the teacher's softmax over the other
    valid rows (of every rank, with `gather`) to the student's. Only the geometry is taught, so the
    student's space stays free to align with audio; a row's similarity to itself is left out (it
    is 1 in both).

    student (B, E), teacher (B, W): L2-normalised; valid (B,) bool.
    """
    all_student, all_teacher, all_valid, offset = _gather_pairs(student, teacher, valid, gather)
    b, n = student.shape[0], all_student.shape[0]
    own = torch.zeros(b, n, dtype=torch.bool, device=valid.device)
    own[torch.arange(b, device=valid.device), torch.arange(b, device=valid.device) + offset] = True
    pair_valid = valid[:, None] & all_valid[None, :] & ~own
    blocked = torch.finfo(torch.float32).min
    with torch.autocast(student.device.type, enabled=False):
        s = (student.float() @ all_student.float().T / temperature).masked_fill(~pair_valid, blocked)
        t = (teacher.float() @ all_teacher.float().T / temperature).masked_fill(~pair_valid, blocked)
    log_p_student = F.log_softmax(s, dim=-1)
    p_teacher = F.softmax(t, dim=-1)
    per_row = (p_teacher * (torch.log(p_teacher.clamp(min=1e-12)) - log_p_student)).where(
        pair_valid, torch.zeros_like(s)).sum(-1)
    return masked_mean(per_row, valid & (pair_valid.sum(-1) > 0), gather)
