"""The GPU benchmarks run small on a CPU, so CI keeps them working between device leases."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train.shards import write_shards
from train.synth import generate
from vlsa.config import preset_config

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(out)], check=True,
                   capture_output=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.read_text())


def test_train_step_bench_counts_flops_and_compares_to_reference(tmp_path):
    r = run_bench("train_step.py", "--device", "cpu", "--preset", "tiny", "--batch", "2", "--steps", "1",
                  "--warmup", "1", tmp_path=tmp_path)
    for key in ("vlsa", "reference"):
        assert r[key]["samples_per_s"] > 0 and 0 < r[key]["mfu"]
    # the full step does more work than the reference stack: unimodal passes on top
    assert r["vlsa"]["gflop_per_sample"] > r["reference"]["gflop_per_sample"]


def test_attention_bench_times_masked_and_unmasked(tmp_path):
    r = run_bench("attention.py", "--device", "cpu", "--preset", "tiny", "--batch", "2", "--reps", "1",
                  tmp_path=tmp_path)
    assert set(r["passes"]) == {"joint", "decoder", "video"}
    assert all(p["default"]["ms"] > 0 and p["default+mask"]["ms"] > 0 for p in r["passes"].values())


def test_loader_bench_reads_shards_with_workers(tmp_path):
    manifest = generate(tmp_path / "synth", n=4, seed=3, split="test")
    write_shards(manifest, tmp_path / "shards", preset_config("tiny"))
    r = run_bench("loader.py", str(tmp_path / "shards"), "--preset", "tiny", "--workers", "0", "1",
                  "--batch", "2", "--seconds", "1", "--repeat", "8", tmp_path=tmp_path)
    assert r["workers"]["0"]["samples"] > 0 and r["workers"]["1"]["samples_per_s"] > 0


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
