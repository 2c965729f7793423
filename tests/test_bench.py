"""The GPU benchmarks run small on a CPU, so CI keeps them working between device leases."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synth import generate
from train.shards import write_shards
from vlsa.config import preset_config

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(out)], check=True,
                   capture_output=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.read_text())


def test_train_step_bench_counts_flops_and_compares_to_reference(tmp_path):
    r = run_bench("train_step.py", "--device", "cpu", "--preset", "tiny", "--batch", "2", "--steps", "1",
                  "--warmup", "1", "--profile", tmp_path=tmp_path)
    for key in ("vlsa", "reference"):
        assert r[key]["samples_per_s"] > 0 and 0 < r[key]["mfu"]
    # the full step does more work than the reference stack: unimodal passes on top
    assert r["vlsa"]["gflop_per_sample"] > r["reference"]["gflop_per_sample"]
    # the profile splits the step's time by kind; on a CPU the matrix products and attention lead
    prof = r["profile"]
    assert prof["by_kind_ms"]["matmul"] > 0 and prof["by_kind_ms"]["attention"] > 0
    assert 0 < prof["kernel_ms"] <= 1.5 * prof["wall_ms"] and prof["top"][0]["kind"] in ("matmul", "attention")
    assert (tmp_path / "train_step.py.profile.txt").read_text().count("aten::") > 10


@pytest.mark.parametrize("preset,sets", [("tiny", {}), ("tiny", {"video.stem": "conv"}),
                                         ("tiny", {"loss.global_tokens": "sampled"}), ("base", {})])
def test_analytic_flop_count_matches_the_step_it_describes(preset, sets):
    """MFU is only as honest as its FLOP count: the formula in bench/train_step.py must equal what
    PyTorch's FLOP counter sees in one real forward + backward of the model (base on fake tensors,
    no memory or time spent). Attention through the math kernel, so it counts as its two matrix
    products (flash kernels would add a recomputation the model FLOPs leave out)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(BENCH))
    import train_step

    from vlsa.model import VLSAModel

    cfg, B = preset_config(preset, **sets), 2
    with torch.device("meta"):
        model, ref = VLSAModel(cfg), train_step.ReferenceStack(cfg)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model, ref = model.to_empty(device="cpu"), ref.to_empty(device="cpu")
        batch = train_step.synthetic_batch(cfg, B, torch.device("cpu"))
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counted:
            model(batch)["loss"].backward()
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counted_ref:
            ref(torch.randn(B, ref.n_enc, cfg.encoder.width)).backward()
    # the count leaves out only the contrastive logits and the matching head (well under 0.1%)
    assert train_step.vlsa_step_flops(cfg) == pytest.approx(counted.get_total_flops() / B, rel=1e-3)
    assert train_step.reference_flops(cfg) == pytest.approx(counted_ref.get_total_flops() / B, rel=1e-6)
    # the count of the earlier leases was short by the embeddings, decoder_embed and the heads
    assert train_step.vlsa_step_flops(cfg, layers_only=True) < 0.999 * counted.get_total_flops() / B


def test_profile_sorts_kernels_by_kind():
    sys.path.insert(0, str(BENCH))
    from train_step import kernel_kind

    names = {  # as an H100 profile names them
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_segment_k_off": "matmul",
        "nvjet_tst_256x128_64x4_1x2_h_bz_coopA_NNT": "matmul",
        "triton_tem_fused_addmm_gelu_3": "matmul",
        "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0": "attention",
        "triton_poi_fused__scaled_dot_product_cudnn_attention_backward_7": "fused (inductor)",
        "triton_red_fused__to_copy_add_native_layer_norm_backward_1": "fused (inductor)",
        "void at::native::multi_tensor_apply_kernel<at::native::FusedAdamMathFunctor<float, 4>>": "optimizer",
        "Memcpy DtoD (Device -> Device)": "copy",
        "void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>": "other",
    }
    assert {name: kernel_kind(name) for name in names} == names


def test_attention_bench_times_masked_and_unmasked(tmp_path):
    r = run_bench("attention.py", "--device", "cpu", "--preset", "tiny", "--batch", "2", "--reps", "1",
                  tmp_path=tmp_path)
    assert set(r["passes"]) == {"joint", "decoder", "video"}
    assert all(p["default"]["ms"] > 0 and p["default+mask"]["ms"] > 0 for p in r["passes"].values())


def test_loader_bench_reads_shards_with_workers(tmp_path):
    """The bench reads every cycled sample after the first batch, in the trainer's batch layout,
    with and without workers: 4 clips cycled 8 times in batches of 2 are 15 batches after the
    first, 30 samples (a time limit long enough never to stop it early). Catches the cycling
    ignored (2 samples), batches counted as samples (15), and batches of another shape."""
    manifest = generate(tmp_path / "synth", n=4, seed=3, split="test")
    write_shards(manifest, tmp_path / "shards", preset_config("tiny"))
    r = run_bench("loader.py", str(tmp_path / "shards"), "--preset", "tiny", "--workers", "0", "1",
                  "--batch", "2", "--seconds", "600", "--repeat", "8", tmp_path=tmp_path)
    v, a, t = (getattr(preset_config("tiny"), m) for m in ("video", "audio", "text"))
    for workers in ("0", "1"):
        assert r["workers"][workers]["samples"] == 4 * 8 - 2
        assert r["workers"][workers]["batch_shapes"] == {"video": [2, v.frames, 3, v.size, v.size],
                                                         "audio": [2, a.bins, a.frames], "text": [2, t.max_len]}
        assert r["workers"][workers]["samples_per_s"] > 0


def test_attribute_probe_names_what_wrong_hits_get_wrong(app_library):
    sys.path.insert(0, str(BENCH))
    import attribute_probe as probe

    rows = [{"attributes": {"colour": c, "shape": s, "size": "small", "motion": "slides"}}
            for c, s in [("red", "star"), ("red", "cross"), ("blue", "star")]]
    video = torch.eye(3)
    text = torch.tensor([[1.0, 0, 0], [1.0, 0.5, 0], [0, 0, 1.0]])  # caption 1 finds clip 0 first
    counts = probe.wrong_first_hits({"text": text, "video": video}, rows, "text")
    assert counts == {"shape": 1}
    assert probe.centroid_accuracy(video, ["a", "a", "b"]) == 1.0
    # row 0 lies nearer b's centroid than its own (a's is pulled off by row 1)
    assert probe.centroid_accuracy(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0]]), ["a", "a", "b"]) == pytest.approx(2 / 3)
    # and the script end to end on the generated library and its checkpoint
    out = subprocess.run([sys.executable, str(BENCH / "attribute_probe.py"), str(app_library.checkpoint),
                          str(app_library.root / "manifest.jsonl")], check=True, capture_output=True, text=True)
    assert out.stdout.startswith("text->video: ") and "motion" in out.stdout.splitlines()[-1]


def test_bench_commands_in_the_docs_run_with_the_venv_python():
    """`python bench/app_latency.py` fails with the system python (no torch, no gradio): catches
    a README or docs/ command that runs a bench script with a bare `python`, wrapped or not."""
    import re

    root = BENCH.parent
    bare = re.compile(r"(^|[^/.\w-])python3?\s+bench/")
    found = [f"{doc.name}: {m.group(0).strip()}" for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
             for m in bare.finditer(doc.read_text())]
    assert not found, found
