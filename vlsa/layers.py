"""The layers VLSA is built from: attention, the pre-norm block and transformer (as ViT / MAE),
patch embeddings and positions, the matching head. `vlsa/model.py` puts them together.

Token orders, as the model's docstring pins them: video frame-major (t * g * g + row * g + col),
audio frequency-major (f * (M / p) + m).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --- transformer ------------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, C); key_valid (B, N) bool or None: which keys may be attended to."""
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if key_valid is None else key_valid[:, None, None, :]
        # SDPA picks flash / memory-efficient kernels on CUDA when no mask is given
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    """Pre-norm transformer block, as ViT / MAE."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_valid)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float, pre_norm: bool = False):
        super().__init__()
        self.norm_pre = nn.LayerNorm(width) if pre_norm else nn.Identity()  # CLIP's ln_pre
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.checkpointing = False  # activation checkpointing trades compute for memory
        # Under autocast the residual stream is float32 (bf16 block outputs added to float32 tokens);
        # set, it is kept in the autocast dtype (as Megatron-LM does): half the bytes for every norm
        # and residual add, forward and backward (docs/PERFORMANCE.md)
        self.low_precision_residual = False

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        if self.low_precision_residual and torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        x = self.norm_pre(x)
        for block in self.blocks:
            if self.checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, key_valid, use_reentrant=False)
            else:
                x = block(x, key_valid)
        return self.norm(x)


# --- patches and positions --------------------------------------------------------------------


def patchify_video(video: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T * H/p * W/p, p * p * C), frame-major."""
    B, T, C, H, W = video.shape
    h, w = H // p, W // p
    x = video.reshape(B, T, C, h, p, w, p).permute(0, 1, 3, 5, 4, 6, 2)
    return x.reshape(B, T * h * w, p * p * C)


def patchify_audio(spec: torch.Tensor, p: int) -> torch.Tensor:
    """(B, F, M) -> (B, F/p * M/p, p * p), frequency-major."""
    B, Fr, M = spec.shape
    f, m = Fr // p, M // p
    return spec.reshape(B, f, p, m, p).permute(0, 1, 3, 2, 4).reshape(B, f * m, p * p)


class ConvStem(nn.Module):
    """Stride-2 convolutions from pixels down to the patch grid, then a 1x1, in place of the
    linear patch embedding (Xiao et al. 2021, "Early convolutions help transformers see better").
    Tokens come out in patchify_video's order. A 4x4 kernel with stride 2 and padding 1 keeps each
    token centred on its own patch while its view reaches a few pixels into the neighbouring
    ones, so a small shape cut by a patch border is still seen whole."""

    def __init__(self, patch: int, width: int):
        super().__init__()
        layers, channels, n = [], 3, patch.bit_length() - 1
        for i in range(n):  # channels width/2^n, ..., width/4, then width
            out = width if i == n - 1 else max(width >> (n - i), 8)
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.GELU()]
            channels = out
        self.net = nn.Sequential(*layers, nn.Conv2d(width, width, 1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, T * H/p * W/p, width), frame-major as patchify_video."""
        B, T = video.shape[:2]
        x = self.net(video.flatten(0, 1))  # (B * T, width, H/p, W/p)
        return x.flatten(2).transpose(1, 2).reshape(B, -1, x.shape[1])


class SeparablePositions(nn.Module):
    """Learned position embedding over a 2-D grid as the sum of a row and a column table:
    (frame, spatial patch) for video, (frequency, time) for audio, (1, position) for text."""

    def __init__(self, rows: int, cols: int, width: int):
        super().__init__()
        self.row = nn.Parameter(torch.zeros(rows, 1, width))
        self.col = nn.Parameter(torch.zeros(1, cols, width))

    def forward(self) -> torch.Tensor:
        """(rows * cols, width)"""
        return (self.row + self.col).flatten(0, 1)


# --- heads ------------------------------------------------------------------------------------


class MatchingHead(nn.Module):
    """Binary "do these belong together" classifier on two global embeddings. A linear layer on
    the concatenation alone cannot score a pair (its logit would be a sum of two one-sided
    terms), so it reads their product and absolute difference."""

    def __init__(self, dim: int):
        super().__init__()
        # unit-norm embeddings have entries ~1/sqrt(dim): the norm brings them to O(1) so the
        # linear layer learns at the same rate as everything else
        self.norm = nn.LayerNorm(2 * dim)
        self.linear = nn.Linear(2 * dim, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(torch.cat([x * y, (x - y).abs()], dim=-1))).squeeze(-1)


def tower_adapter(width: int, dim: int, residual: bool = False) -> nn.Sequential:
    """The small MLP from a pretrained tower's `width` into the model's `dim`, initialised as the
    model's own layers are; a residual one (audio.tower_residual) ends at zero, so the model
    starts as the shared path alone."""
    adapter = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, dim))
    for layer in adapter[::2]:
        init_weights(layer)
    if residual:
        nn.init.zeros_(adapter[2].weight)
    return adapter


def init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.trunc_normal_(m.weight, std=0.02)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
