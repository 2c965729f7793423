"""`vlsa eval --protocol`: the paper's benchmarks scored as they are scored, over 3 seeds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import VLSA_BIN

from train import protocols
from train.benchmarks import PROTOCOLS
from train.data import Row
from train.evaluate import retrieval_metrics
from train.protocols import caption_queries, evaluate_protocol, protocol_metrics

E = torch.eye(4)


def test_retrieval_metrics_with_several_truths_of_constant_scores_are_chance():
    """Each query with 4 correct candidates among 12 and every score equal: R@k is the chance that
    k places drawn at random hold one of the 4 (R@1 = 4/12), the rank of the first one (12 + 1) /
    (4 + 1). Catches: only one truth counted a row (R@1 = 1/9), ties counted for the truth."""
    truth = torch.zeros(3, 12, dtype=torch.bool)
    for q in range(3):
        truth[q, 4 * q: 4 * q + 4] = True
    m = retrieval_metrics(torch.ones(3, 12), truth)
    assert m["R@1"] == pytest.approx(100 * 4 / 12)
    assert m["R@5"] == pytest.approx(100 * (1 - (8 * 7 * 6 * 5 * 4) / (12 * 11 * 10 * 9 * 8)))
    assert m["R@10"] == pytest.approx(100.0) and m["MedR"] == pytest.approx(13 / 5)


def test_protocol_audiocaps_scores_every_caption_and_any_caption_of_a_clip():
    """Three clips; clip 0 has two captions, the first pointing at clip 2's sound. text->audio:
    every caption is a query (4), its clip the answer; audio->text: a clip is found when any of
    its captions is at the top. Catches: a caption scored against the wrong clip (an owner index
    off by one), audio->text counting only a clip's first caption, the queries' rows mixed up."""
    a = E[:3]  # sounds of clips 0, 1, 2
    clips = {"audio": a, "video": torch.zeros(3, 4), "has_audio": torch.ones(3, dtype=torch.bool),
             "has_video": torch.zeros(3, dtype=torch.bool), "index": torch.arange(3)}
    text = torch.stack([E[2], E[0], E[1], E[0]])  # clip 0: e2, e0; clip 1: e1; clip 2: e0
    owners = torch.tensor([0, 0, 1, 2])
    m = protocol_metrics(PROTOCOLS["audiocaps"], clips, text, owners)
    t2a, a2t = m["text->audio"], m["audio->text"]
    # captions: e2 (clip 0) -> clip 2 above, clip 0 tied with clip 1: rank 2.5; e0 -> clip 0 first;
    # e1 -> clip 1 first; e0 (clip 2) -> clip 0 above, clip 2 tied with clip 1: rank 2.5
    assert t2a["N"] == 4 and t2a["R@1"] == 50.0 and t2a["MeanR"] == pytest.approx(7 / 4)
    # clip 0: its second caption e0 tied first with clip 2's e0: rank 1.5; clip 1: e1 first;
    # clip 2: its e0 scores 0, below clip 0's e2 and tied with two wrong ones: rank 1 + 4 / 2 = 3
    assert a2t["N"] == 3 and a2t["R@1"] == pytest.approx(50.0) and a2t["MeanR"] == pytest.approx((1.5 + 1 + 3) / 3)


def test_protocol_caption_queries_every_caption_or_the_first():
    """AudioCaps asks with every caption of a clip, MSR-VTT 1k-A with its one ("text"); empty
    captions ask nothing. Catches: the first caption only for AudioCaps, all of them for 1k-A."""
    rows = [Row(None, None, "a", captions=["a", "b", " "]), Row(None, None, "c"), Row(None, None, None)]
    assert caption_queries(rows, PROTOCOLS["audiocaps"].all_captions) == (["a", "b", "c"], [0, 0, 1])
    assert caption_queries(rows, PROTOCOLS["msrvtt-1ka"].all_captions) == (["a", "c"], [0, 1])


def test_protocol_mean_and_spread_over_three_seeds(monkeypatch):
    """Each of the 3 seeds samples the clips' frames anew (seed 0, 1, 2) and the table's mean and
    spread are over those runs. Catches: one seed used three times, the spread of the wrong runs."""
    seen = []

    def fake_embed(model, rows, seed, batch_size=32, workers=0):
        seen.append(seed)  # seed 0: every video on its own caption; later seeds: shifted by one
        video = E[:3] if seed == 0 else E[[1, 2, 0]]
        return {"video": video, "audio": video, "has_video": torch.ones(3, dtype=torch.bool),
                "has_audio": torch.ones(3, dtype=torch.bool), "index": torch.arange(3)}

    class FakeModel:
        def embed_text(self, captions):
            return E[[int(c[-1]) for c in captions]]

    rows = [Row(video=None, audio=None, text=f"caption {i}") for i in range(3)]
    monkeypatch.setattr(protocols, "embed_clips", fake_embed)
    monkeypatch.setattr(protocols, "protocol_rows", lambda *args: rows)
    result = evaluate_protocol(FakeModel(), "m.jsonl", "msrvtt-1ka", seeds=3)
    assert seen == [0, 1, 2]
    r1 = [run["text->video"]["R@1"] for run in result["seeds"]]
    assert r1 == [100.0, 0.0, 0.0]
    assert result["mean"]["text->video"]["R@1"] == pytest.approx(100 / 3)
    assert result["std"]["text->video"]["R@1"] == pytest.approx((2 * (100 / 3) ** 2 + (200 / 3) ** 2) ** 0.5 / 3 ** 0.5)


def test_eval_protocol_msrvtt_1ka_prints_the_paper_table(tmp_path):
    """The must-show: `vlsa eval --protocol msrvtt-1ka` on a generated MSR-VTT-shaped test split
    (clips with 3 captions each; 1k-A asks with one, the row's "text") prints ours as mean ± spread
    over 3 seeds beside the paper's fine-tuned and zero-shot rows, a dash where the paper has no
    number. Catches: every caption asked (6 clips would give 18
    queries), a table without the spread or the paper's rows."""
    from synth import generate
    from vlsa import VLSA

    manifest = generate(tmp_path / "msrvtt", n=6, seed=7, split="test", seconds=1.0, size=64, workers=1)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({**r, "captions": [r["text"], "another caption", "a third"]}) + "\n"
                                for r in rows))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    command = [str(VLSA_BIN), "eval", "--checkpoint", str(tmp_path / "ckpt"), "--manifest", str(manifest),
               "--protocol", "msrvtt-1ka", "--device", "cpu"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "6 clips, 6 captions, 3 seed(s)" in out, out
    lines = out.splitlines()
    ours = next(line for line in lines if "ours (3 seeds)" in line)
    assert ours.startswith("text->video") and ours.count("±") == 4 and ours.split()[-1] == "6", out
    fine = next(line for line in lines if "paper fine-tuned" in line).split()
    zero = next(line for line in lines if "paper zero-shot" in line).split()
    assert fine[-4:] == ["27.1", "57.3", "68.9", "-"] and zero[-4:] == ["20.4", "40.6", "53.8", "-"], out


def test_finetune_config_is_the_papers_recipe():
    """configs/finetune-msrvtt.toml reads as `vlsa train --config` reads it, its model settings
    apply to `base`, and it is the paper's fine-tuning: 256 a step on 8 GPUs, 20 epochs of the
    9,000 training videos of MSR-VTT's 1k-A split, retrieval loss only. Catches: a misspelt field
    or model key (refused only when a user runs it), steps not matching 20 epochs."""
    from train.cli import _load_config_file
    from train.state import TrainConfig
    from vlsa.config import preset_config

    fields = _load_config_file(Path(__file__).parents[1] / "configs" / "finetune-msrvtt.toml")
    config = preset_config("base", **fields["overrides"])
    tc = TrainConfig(manifest="msrvtt.jsonl", **fields)
    assert tc.batch_size * tc.accum * 8 == 256 and tc.steps == 20 * 9000 // 256
    assert not config.loss.masked_modelling and config.loss.matching == "video_text"
