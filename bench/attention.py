"""What a key-padding mask costs in scaled_dot_product_attention, per kernel, at the VLSA passes'
shapes. The joint pass and the decoder need a mask (caption padding, missing modalities); the
unimodal video and audio passes do not, so they can take the flash kernel.

    python bench/attention.py --preset base --batch 128          # one GPU
    python bench/attention.py --device cpu --preset tiny --batch 8

JSON: forward + backward milliseconds and attention TFLOP/s (4 * N^2 * d per head-row, x3 for the
backward) for each pass, with and without a mask, for each SDPA backend that accepts the inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_step import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

from vlsa.config import preset_config  # noqa: E402

BACKENDS = {"default": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION}  # math: the fallback, far slower and O(N^2) memory


def passes(cfg) -> dict[str, tuple[int, int, int]]:
    """name -> (tokens, heads, head dim)"""
    e, d = cfg.encoder, cfg.decoder
    kv = cfg.video.frames * round(cfg.video.grid ** 2 * (1 - cfg.video.mask_ratio))
    ka = round(cfg.audio.num_patches * (1 - cfg.audio.mask_ratio))
    L = cfg.text.max_len
    return {"joint": (kv + ka + L, e.heads, e.width // e.heads),
            "decoder": (cfg.video.num_patches + cfg.audio.num_patches + L, d.heads, d.width // d.heads),
            "video": (cfg.video.num_patches, e.heads, e.width // e.heads)}


def time_attention(B, N, H, Dh, masked, backend, device, dtype, reps) -> float:
    q, k, v = (torch.randn(B, H, N, Dh, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = None
    if masked:  # the last 10% of keys are padding, as the caption's tail is
        mask = (torch.arange(N, device=device) < int(N * 0.9))[None, None, None, :].expand(B, 1, 1, N)
    grad = torch.randn(B, H, N, Dh, device=device, dtype=dtype)

    def run():
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).backward(grad)

    with sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext():
        for _ in range(2):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = preset_config(args.preset)
    result = {"preset": args.preset, "batch": args.batch, "dtype": str(dtype).split(".")[-1],
              "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "passes": {}}
    backends = BACKENDS if device.type == "cuda" else {"default": None}
    for name, (N, H, Dh) in passes(cfg).items():
        flops = 3 * 4 * args.batch * H * N * N * Dh
        rows = {}
        for masked in (False, True):
            for bname, backend in backends.items():
                key = f"{bname}{'+mask' if masked else ''}"
                try:
                    sec = time_attention(args.batch, N, H, Dh, masked, backend, device, dtype, args.reps)
                    rows[key] = {"ms": round(sec * 1e3, 2), "tflops": round(flops / sec / 1e12, 1)}
                except RuntimeError as e:  # this backend does not take these inputs
                    rows[key] = {"error": str(e).splitlines()[0][:120]}
        result["passes"][name] = {"tokens": N, "heads": H, "head_dim": Dh, **rows}
    emit(result, args.out)


if __name__ == "__main__":
    main()
