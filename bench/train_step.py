"""Benchmark the full VLSA training step beside a plain reference stack, on one device.

    python bench/train_step.py --device cpu --preset tiny --batch 8          # CI / laptop
    python bench/train_step.py --device cuda --preset base --batch 128 --compile

Reports JSON: samples/s, step time, model TFLOP/s (analytic count below), and MFU against the
matrix-multiply rate measured on the same device in the same run. The reference is PRODUCT.md's
"plain PyTorch stack of the same shapes": nn.TransformerEncoder ViT over the joint pass's visible
tokens, then a decoder-width nn.TransformerEncoder over the full token count, forward + backward +
AdamW, so the ratio of the two holds on any card.

FLOPs (matmuls only, forward; training = 3x forward): a transformer layer over N tokens of width
d with MLP ratio r costs 2 * N * (4 + 2r) * d^2 for the linear layers plus 4 * N^2 * d for the
attention scores and their weighted sum.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vlsa.config import preset_config  # noqa: E402
from vlsa.model import VLSAModel  # noqa: E402


def layer_flops(n: int, d: int, mlp_ratio: float = 4.0) -> float:
    return 2 * n * (4 + 2 * mlp_ratio) * d * d + 4 * n * n * d


def vlsa_step_flops(cfg) -> float:
    """Forward + backward FLOPs of one VLSA training sample (all passes, decoder, heads)."""
    e, dd = cfg.encoder, cfg.decoder
    nv, na, L = cfg.video.num_patches, cfg.audio.num_patches, cfg.text.max_len
    kv = cfg.video.frames * max(1, round(cfg.video.grid ** 2 * (1 - cfg.video.mask_ratio)))
    ka = max(1, round(na * (1 - cfg.audio.mask_ratio)))
    enc = lambda n: e.depth * layer_flops(n, e.width, e.mlp_ratio)  # noqa: E731
    flops = 0.0
    if cfg.loss.masked_modelling:
        flops += enc(kv + ka + L) + dd.depth * layer_flops(nv + na + L, dd.width, dd.mlp_ratio)
        text_dim = cfg.text.embed_dim or e.width
        scored = min(L, math.ceil(2 * cfg.text.mask_ratio * L))  # see VLSAModel.scored_tokens
        flops += 2 * scored * (dd.width * text_dim + text_dim * cfg.text.vocab_size)
    if cfg.loss.matching != "none":
        visible = cfg.loss.global_tokens == "visible"
        flops += enc(kv if visible else nv) + enc(L)
        if cfg.loss.matching == "audio":
            flops += enc(ka if visible else na)
    return 3 * flops


def reference_flops(cfg) -> float:
    kv = cfg.video.frames * round(cfg.video.grid ** 2 * (1 - cfg.video.mask_ratio))
    ka = round(cfg.audio.num_patches * (1 - cfg.audio.mask_ratio))
    n_enc, n_dec = kv + ka + cfg.text.max_len, cfg.video.num_patches + cfg.audio.num_patches + cfg.text.max_len
    e, d = cfg.encoder, cfg.decoder
    return 3 * (e.depth * layer_flops(n_enc, e.width) + d.depth * layer_flops(n_dec, d.width))


class ReferenceStack(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e, d = cfg.encoder, cfg.decoder
        layer = lambda w, h: nn.TransformerEncoderLayer(w, h, 4 * w, 0.0, "gelu", batch_first=True, norm_first=True)  # noqa: E731
        self.encoder = nn.TransformerEncoder(layer(e.width, e.heads), e.depth, enable_nested_tensor=False)
        self.bridge = nn.Linear(e.width, d.width)
        self.decoder = nn.TransformerEncoder(layer(d.width, d.heads), d.depth, enable_nested_tensor=False)
        kv = cfg.video.frames * round(cfg.video.grid ** 2 * (1 - cfg.video.mask_ratio))
        ka = round(cfg.audio.num_patches * (1 - cfg.audio.mask_ratio))
        self.n_enc = kv + ka + cfg.text.max_len
        self.n_dec = cfg.video.num_patches + cfg.audio.num_patches + cfg.text.max_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bridge(self.encoder(x))
        pad = h.new_zeros(h.shape[0], self.n_dec - self.n_enc, h.shape[-1])
        return self.decoder(torch.cat([h, pad], dim=1)).float().pow(2).mean()


def synthetic_batch(cfg, B: int, device) -> dict[str, torch.Tensor]:
    v, a, t = cfg.video, cfg.audio, cfg.text
    ones = torch.ones(B, dtype=torch.bool, device=device)
    mask = torch.ones(B, t.max_len, dtype=torch.bool, device=device)
    return {"video": torch.randn(B, v.frames, 3, v.size, v.size, device=device),
            "audio": torch.randn(B, a.bins, a.frames, device=device),
            "text": torch.randint(1, 49000, (B, t.max_len), device=device),
            "text_mask": mask, "text_maskable": mask, "has_video": ones, "has_audio": ones, "has_text": ones}


def time_steps(step, steps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def matmul_rate(device, dtype) -> float:
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sec = time_steps(lambda: a @ b, 20 if device.type == "cuda" else 5, 3, device)
    return 2 * n ** 3 / sec


def make_step(model, loss_fn, opt, amp_dtype, device):
    def step():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    amp = torch.bfloat16 if device.type == "cuda" else None
    cfg = preset_config(args.preset)
    fused = device.type == "cuda"
    result = {"preset": args.preset, "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
              "batch": args.batch, "dtype": "bf16" if amp else "fp32", "compile": args.compile,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    peak = matmul_rate(device, amp or torch.float32)
    result["matmul_tflops"] = round(peak / 1e12, 2)

    model = VLSAModel(cfg).to(device)
    model.encoder.checkpointing = model.decoder.checkpointing = args.checkpointing
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=fused)
    batch = synthetic_batch(cfg, args.batch, device)
    fn = torch.compile(model) if args.compile else model
    sec = time_steps(make_step(fn, lambda m: m(batch)["loss"], opt, amp, device), args.steps, args.warmup, device)
    flops = vlsa_step_flops(cfg) * args.batch / sec
    result["vlsa"] = {"step_s": round(sec, 4), "samples_per_s": round(args.batch / sec, 1),
                      "gflop_per_sample": round(vlsa_step_flops(cfg) / 1e9, 1),
                      "tflops": round(flops / 1e12, 3), "mfu": round(flops / peak, 3)}
    if device.type == "cuda":
        result["vlsa"]["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 1)
    del model, opt, fn
    if not args.no_reference:
        ref = ReferenceStack(cfg).to(device)
        ropt = torch.optim.AdamW(ref.parameters(), lr=1e-4, fused=fused)
        x = torch.randn(args.batch, ref.n_enc, cfg.encoder.width, device=device)
        rfn = torch.compile(ref) if args.compile else ref
        sec = time_steps(make_step(rfn, lambda m: m(x), ropt, amp, device), args.steps, args.warmup, device)
        flops = reference_flops(cfg) * args.batch / sec
        result["reference"] = {"step_s": round(sec, 4), "samples_per_s": round(args.batch / sec, 1),
                               "gflop_per_sample": round(reference_flops(cfg) / 1e9, 1),
                               "tflops": round(flops / 1e12, 3), "mfu": round(flops / peak, 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
