"""Benchmark the full VLSA training step beside a plain reference stack, on one device.

    python bench/train_step.py --device cpu --preset tiny --batch 8                 # CI / laptop
    python bench/train_step.py --preset base --batch 72 --compile model --bf16-residual --profile  # one GPU
    python bench/train_step.py --preset base --batch 64 --compile blocks          # `vlsa train --compile`
    python bench/train_step.py --preset base --max-batch [--checkpointing]         # memory
    python bench/train_step.py --preset base --set decoder.heads=16 --set decoder.key_mask=true  # MAE's decoder

Reports JSON: samples/s, step time, model TFLOP/s (analytic count below), and MFU against the
matrix-multiply rate measured on the same device in the same run. The step is the trainer's:
bf16 autocast on CUDA, every pass (joint masked modelling, decoder, unimodal video, audio and
text passes), every loss, gradient clipping and fused AdamW. The reference is docs/DESIGN.md's
"plain PyTorch stack of the same shapes": nn.TransformerEncoder ViT over the joint pass's visible
tokens, then a decoder-width nn.TransformerEncoder over the full token count, forward + backward +
AdamW, so the ratio of the two holds on any card.

FLOPs (every matrix product, forward; training = 3x forward): a transformer layer over N tokens of
width d with MLP ratio r costs 2 * N * (4 + 2r) * d^2 for the linear layers plus 4 * N^2 * d for
the attention scores and their weighted sum; a linear map of N tokens from a to b features 2Nab
(patch embeddings, decoder_embed, the heads, the text logits). tests/test_bench.py checks the
count against torch.utils.flop_counter on a real step.

--profile adds a torch.profiler pass over two steps: kernel time by kind (matmul, attention,
Inductor's fused kernels, ...), how busy the device was, the top kernels (a table beside --out).

--max-batch finds the largest batch whose step fits: peak memory is linear in the batch, so two
small batches give the slope, and the estimate is then stepped for real (backing off on OOM).
--check-sync runs one step under torch.cuda.set_sync_debug_mode("error"): it fails on any
host synchronisation inside the step.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vlsa.config import parse_override, preset_config  # noqa: E402
from vlsa.layers import ConvStem  # noqa: E402
from vlsa.model import VLSAModel, max_chosen_tokens, num_kept  # noqa: E402


def layer_flops(n: int, d: int, mlp_ratio: float = 4.0) -> float:
    return 2 * n * (4 + 2 * mlp_ratio) * d * d + 4 * n * n * d


def linear_flops(n: int, d_in: int, d_out: int) -> float:
    return 2 * n * d_in * d_out


def conv_stem_flops(cfg) -> tuple[float, float]:
    """Forward FLOPs of VLSAModel's ConvStem over one clip, and those of its first convolution
    (which reads pixels, so its backward computes no input gradient)."""
    stem = ConvStem(cfg.video.patch, cfg.encoder.width).net
    side, layers = cfg.video.size, []
    for conv in (m for m in stem if isinstance(m, nn.Conv2d)):
        side //= conv.stride[0]
        layers.append(2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] * side * side)
    return cfg.video.frames * sum(layers), cfg.video.frames * layers[0]


def patch_embedding_flops(cfg) -> float:
    """Forward + backward FLOPs of embedding one clip's video and audio patches (VLSAModel.embed,
    once a step). A layer that reads pixels or spectrogram values needs only its weight
    gradient: 2x its forward, not 3x."""
    D = cfg.encoder.width
    if cfg.video.stem == "conv":
        forward, first = conv_stem_flops(cfg)
        video = 3 * forward - first
    else:
        video = 2 * linear_flops(cfg.video.num_patches, cfg.video.patch ** 2 * 3, D)
    return video + 2 * linear_flops(cfg.audio.num_patches, cfg.audio.patch ** 2, D)


def visible_tokens(cfg) -> tuple[int, int]:
    """Video and audio tokens of the joint masked-modelling pass (VLSAModel.mask_video/mask_audio)."""
    return cfg.video.frames * num_kept(cfg.video.grid ** 2, cfg.video.mask_ratio), \
        num_kept(cfg.audio.num_patches, cfg.audio.mask_ratio)


def vlsa_step_flops(cfg, layers_only: bool = False) -> float:
    """Forward + backward FLOPs of one VLSA training sample: every matrix product of every pass
    (training = 3x forward, except the patch embeddings, see above). layers_only: the
    transformer layers and the text logits alone, the count of the leases before 2026-11-27."""
    e, dd = cfg.encoder, cfg.decoder
    nv, na, L = cfg.video.num_patches, cfg.audio.num_patches, cfg.text.max_len
    kv, ka = visible_tokens(cfg)
    text_dim = cfg.text.embed_dim or e.width
    enc = lambda n: e.depth * layer_flops(n, e.width, e.mlp_ratio)  # noqa: E731
    text_in = linear_flops(L, text_dim, e.width) if text_dim != e.width else 0.0  # a factorised token embedding
    flops, extra = 0.0, 0.0  # forward; extra: what the older count left out
    if cfg.loss.masked_modelling:
        flops += enc(kv + ka + L) + dd.depth * layer_flops(nv + na + L, dd.width, dd.mlp_ratio)
        scored = max_chosen_tokens(L, cfg.text.mask_ratio)  # VLSAModel.scored_tokens
        flops += 2 * scored * (dd.width * text_dim + text_dim * cfg.text.vocab_size)
        extra += text_in + linear_flops(kv + ka + L, e.width, dd.width)  # decoder_embed
        extra += linear_flops(nv, dd.width, cfg.video.patch ** 2 * 3) + linear_flops(na, dd.width, cfg.audio.patch ** 2)
    if cfg.loss.matching != "none":
        gv, ga = nv, na  # tokens of the unimodal passes (VLSAModel.global_token_ids)
        if cfg.loss.global_tokens == "visible":
            gv, ga = kv, ka
        elif cfg.loss.global_tokens == "sampled":
            drop = 1 - cfg.loss.global_keep
            gv, ga = cfg.video.frames * num_kept(cfg.video.grid ** 2, drop), num_kept(na, drop)
        flops += enc(gv) + enc(L)
        extra += text_in + 2 * linear_flops(1, e.width, cfg.embed_dim)  # projections
        if cfg.loss.matching == "audio":
            flops += enc(ga)
            extra += linear_flops(1, e.width, cfg.embed_dim)
    if layers_only:
        return 3 * flops
    return 3 * (flops + extra) + patch_embedding_flops(cfg)


def reference_flops(cfg) -> float:
    kv, ka = visible_tokens(cfg)
    n_enc, n_dec = kv + ka + cfg.text.max_len, cfg.video.num_patches + cfg.audio.num_patches + cfg.text.max_len
    e, d = cfg.encoder, cfg.decoder
    bridge = linear_flops(n_enc, e.width, d.width)
    return 3 * (e.depth * layer_flops(n_enc, e.width) + bridge + d.depth * layer_flops(n_dec, d.width))


class ReferenceStack(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        e, d = cfg.encoder, cfg.decoder
        layer = lambda w, h: nn.TransformerEncoderLayer(w, h, 4 * w, 0.0, "gelu", batch_first=True, norm_first=True)  # noqa: E731
        self.encoder = nn.TransformerEncoder(layer(e.width, e.heads), e.depth, enable_nested_tensor=False)
        self.bridge = nn.Linear(e.width, d.width)
        self.decoder = nn.TransformerEncoder(layer(d.width, d.heads), d.depth, enable_nested_tensor=False)
        kv, ka = visible_tokens(cfg)
        self.n_enc = kv + ka + cfg.text.max_len
        self.n_dec = cfg.video.num_patches + cfg.audio.num_patches + cfg.text.max_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bridge(self.encoder(x))
        pad = h.new_zeros(h.shape[0], self.n_dec - self.n_enc, h.shape[-1])
        return self.decoder(torch.cat([h, pad], dim=1)).float().pow(2).mean()


def synthetic_batch(cfg, B: int, device) -> dict[str, torch.Tensor]:
    """A batch as the loader gives it: captions of varied length, padded to text.max_len."""
    v, a, t = cfg.video, cfg.audio, cfg.text
    g = torch.Generator().manual_seed(0)
    ones = torch.ones(B, dtype=torch.bool, device=device)
    lengths = torch.randint(max(2, t.max_len // 3), t.max_len + 1, (B, 1), generator=g)
    mask = (torch.arange(t.max_len)[None, :] < lengths).to(device)
    return {"video": torch.randn(B, v.frames, 3, v.size, v.size, generator=g).to(device),
            "audio": torch.randn(B, a.bins, a.frames, generator=g).to(device),
            "text": torch.randint(1, t.vocab_size - 1, (B, t.max_len), generator=g).to(device) * mask,
            "text_mask": mask, "text_maskable": mask, "has_video": ones, "has_audio": ones, "has_text": ones}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - t0) / steps


def matmul_rate(device, dtype) -> float:
    """The attainable dense matmul rate: the best of a few large square products."""
    sizes = (4096, 8192, 16384) if device.type == "cuda" else (1024,)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        reps = max(3, int(2e13 / (2 * n ** 3))) if device.type == "cuda" else 5
        best = max(best, 2 * n ** 3 / time_steps(functools.partial(torch.matmul, a, b), reps, 3, device))
    return best


# what each kernel is, by name (first match wins): Inductor names its kernels triton_* (triton_tem_*:
# a matmul template; the others fused pointwise and reductions, named after the ops they absorb),
# cuBLAS its Hopper matmuls sm90_xmma_* and nvjet_*, cuDNN its attention *sdpa*
KERNEL_KINDS = [
    ("matmul", r"^triton_tem"),
    ("fused (inductor)", r"^triton_"),
    ("attention", r"sdpa|fmha|flash|attention|attn"),
    ("matmul", r"gemm|xmma|nvjet|cutlass|wgmma|splitk|aten::mm|aten::addmm|aten::bmm"),
    ("optimizer", r"adam|multi_tensor|foreach"),
    ("copy", r"memcpy|memset|copy|cat"),
]


def kernel_kind(name: str) -> str:
    return next((kind for kind, pattern in KERNEL_KINDS if re.search(pattern, name, re.IGNORECASE)), "other")


def profile_steps(step, device, steps: int = 2, top: int = 25) -> tuple[dict, str]:
    """Where a step's device time goes: milliseconds a step by kernel kind, the busy fraction
    (kernel time over wall time: the rest is the device waiting on the host), and the top kernels.
    On a CPU the same table is made of the operators' own times."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    synchronize(device)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        wall_ms = (time.perf_counter() - t0) * 1e3 / steps
    events = prof.key_averages()
    if cuda:
        kernels = [(e.key, e.device_time_total, e.count) for e in events if e.device_type == DeviceType.CUDA]
    else:
        kernels = [(e.key, e.self_cpu_time_total, e.count) for e in events if e.key.startswith("aten::")]
    kernels = sorted(((name, us / 1e3 / steps, n // steps) for name, us, n in kernels), key=lambda k: -k[1])
    busy = sum(ms for _, ms, _ in kernels)
    by_kind: dict[str, float] = {}
    for name, ms, _ in kernels:
        kind = kernel_kind(name)
        by_kind[kind] = by_kind.get(kind, 0.0) + ms
    summary = {"wall_ms": round(wall_ms, 2), "kernel_ms": round(busy, 2), "busy": round(busy / wall_ms, 3),
               "launches": sum(n for *_, n in kernels),
               "by_kind_ms": {k: round(v, 2) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
               "top": [{"kernel": name[:120], "kind": kernel_kind(name), "ms": round(ms, 3), "calls": n}
                       for name, ms, n in kernels[:top]]}
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    return summary, events.table(sort_by=sort, row_limit=60, max_name_column_width=90)


def make_step(params, loss_fn, opt, amp_dtype, device, clip: float | None = 1.0):
    """forward under autocast, backward, clip, optimizer step: what the trainer does."""
    params = list(params)

    def step():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def build(cfg, args, device):
    model = VLSAModel(cfg).to(device)
    model.encoder.checkpointing = model.decoder.checkpointing = args.checkpointing
    model.encoder.low_precision_residual = model.decoder.low_precision_residual = args.bf16_residual
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=device.type == "cuda")
    fn = model
    if args.compile == "blocks":
        model.compile_blocks(mode=args.compile_mode)
    elif args.compile == "model":
        fn = torch.compile(model, mode=args.compile_mode)
    return model, opt, fn


def vlsa_step(cfg, args, device, batch_size: int, amp):
    model, opt, fn = build(cfg, args, device)
    batch = synthetic_batch(cfg, batch_size, device)
    return make_step(model.parameters(), lambda: fn(batch)["loss"], opt, amp, device)


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def peak_memory(cfg, args, device, batch_size: int, amp) -> float:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    step = vlsa_step(cfg, args, device, batch_size, amp)
    step()
    step()  # the optimizer state exists from the first step on
    synchronize(device)
    del step
    return torch.cuda.max_memory_allocated()


def find_max_batch(cfg, args, device, amp) -> dict:
    """Largest batch (a multiple of 8) whose training step runs on this card."""
    total = torch.cuda.get_device_properties(device).total_memory
    b1, b2 = 16, 32
    m1, m2 = peak_memory(cfg, args, device, b1, amp), peak_memory(cfg, args, device, b2, amp)
    per_sample = (m2 - m1) / (b2 - b1)
    fixed = m1 - per_sample * b1
    guess = int((0.97 * total - fixed) / per_sample) // 8 * 8
    result = {"gib_per_sample": round(per_sample / 2 ** 30, 3), "fixed_gib": round(fixed / 2 ** 30, 2),
              "card_gib": round(total / 2 ** 30, 1), "estimate": guess}
    batch = guess
    for _ in range(6):
        try:
            result["peak_gib"] = round(peak_memory(cfg, args, device, batch, amp) / 2 ** 30, 1)
            result["max_batch"] = batch
            return result
        except Exception as e:  # noqa: BLE001 -- only OOM is expected; anything else is re-raised
            if not is_oom(e):
                raise
            torch.cuda.empty_cache()
            batch = int(batch * 0.93) // 8 * 8
    result["max_batch"] = None
    return result


def check_sync(cfg, args, device, batch_size: int, amp) -> str:
    """'none' if a warmed-up step runs without a host synchronisation, else the error."""
    step = vlsa_step(cfg, args, device, batch_size, amp)
    step()
    synchronize(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return "none"
    except RuntimeError as e:
        return str(e).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")


def rates(flops_per_sample: float, batch: int, sec: float, peak: float) -> dict:
    flops = flops_per_sample * batch / sec
    return {"step_s": round(sec, 4), "samples_per_s": round(batch / sec, 1),
            "gflop_per_sample": round(flops_per_sample / 1e9, 1),
            "tflops": round(flops / 1e12, 3), "mfu": round(flops / peak, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", choices=["none", "blocks", "model"], default="none",
                    help="blocks: VLSAModel.compile_blocks (what `vlsa train --compile` does); model: torch.compile")
    ap.add_argument("--compile-mode", help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    ap.add_argument("--bf16-residual", action="store_true",
                    help="keep the residual stream in bf16 under autocast (Transformer.low_precision_residual)")
    ap.add_argument("--profile", action="store_true",
                    help="after timing, profile two steps: device time by kernel kind, busy fraction, top kernels")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--max-batch", action="store_true", help="find the largest batch that fits (CUDA)")
    ap.add_argument("--check-sync", action="store_true", help="fail-fast check for host syncs in the step (CUDA)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="model override as for `vlsa train --set` (JSON value), e.g. decoder.heads=16")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    amp = torch.bfloat16 if cuda else None
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        overrides = dict(parse_override(pair) for pair in args.sets)
    except ValueError as e:
        ap.error(f"--set: {e}")
    cfg = preset_config(args.preset, **overrides)
    result = {"preset": args.preset, "overrides": overrides, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
              "batch": args.batch, "dtype": "bf16" if amp else "fp32", "compile": args.compile,
              "compile_mode": args.compile_mode,
              "checkpointing": args.checkpointing, "bf16_residual": args.bf16_residual, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    if args.max_batch or args.check_sync:
        if not cuda:
            ap.error("--max-batch and --check-sync need a CUDA device")
        if args.max_batch:
            result["memory"] = find_max_batch(cfg, args, device, amp)
        if args.check_sync:
            result["host_syncs"] = check_sync(cfg, args, device, args.batch, amp)
        return emit(result, args.out)

    peak = matmul_rate(device, amp or torch.float32)
    result["matmul_tflops"] = round(peak / 1e12, 1)
    t0 = time.perf_counter()
    step = vlsa_step(cfg, args, device, args.batch, amp)
    step()  # the first step compiles
    result["first_step_s"] = round(time.perf_counter() - t0, 1)
    sec = time_steps(step, args.steps, args.warmup, device)
    result["vlsa"] = rates(vlsa_step_flops(cfg), args.batch, sec, peak)
    # MFU under the earlier leases' count (transformer layers and text logits only), to compare
    result["vlsa"]["mfu_layers_only"] = round(vlsa_step_flops(cfg, layers_only=True) * args.batch / sec / peak, 3)
    if cuda:
        result["vlsa"]["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 1)
    if args.profile:
        emit(result, args.out, echo=False)  # the timing stands even if profiling fails
        result["profile"], table = profile_steps(step, device)
        if args.out:
            Path(args.out).with_suffix(".profile.txt").write_text(table + "\n")
    del step
    if not args.no_reference:
        ref = ReferenceStack(cfg).to(device)
        ropt = torch.optim.AdamW(ref.parameters(), lr=1e-4, fused=cuda)
        x = torch.randn(args.batch, ref.n_enc, cfg.encoder.width, device=device)
        rfn = torch.compile(ref) if args.compile != "none" else ref
        rstep = make_step(ref.parameters(), lambda: rfn(x), ropt, amp, device, clip=None)
        sec = time_steps(rstep, args.steps, args.warmup, device)
        result["reference"] = rates(reference_flops(cfg), args.batch, sec, peak)
        result["ratio_to_reference_mfu"] = round(result["vlsa"]["mfu"] / result["reference"]["mfu"], 2)
    emit(result, args.out)


def emit(result: dict, out: str | None, echo: bool = True) -> None:
    text = json.dumps(result, indent=2)
    if echo:
        print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()
