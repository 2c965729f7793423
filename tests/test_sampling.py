"""The training sampler (resumable, sharded across ranks, hard-negative groups), the retrieval
metrics and the manifest reader."""

from pathlib import Path

import pytest
import torch

from train.data import GroupedSampler, ResumableSampler, caption_keys, read_manifest
from train.evaluate import metrics_from_embeddings, ranks_of_truth, retrieval_metrics


def test_sampler_shards_ranks_and_resumes():
    full = list(ResumableSampler(10, seed=1))
    assert sorted(full) == list(range(10))
    sampler = ResumableSampler(10, seed=1)
    sampler.set_position(0, 4)
    assert list(sampler) == full[4:]
    ranks = [list(ResumableSampler(10, seed=1, rank=r, world=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(10)) and not set(ranks[0]) & set(ranks[1])


def test_caption_keys_pick_the_rarest_word_shared_by_a_group():
    captions = ["a red circle", "a red square", "a red star", "a blue circle", "a blue square", "a blue star",
                "a green circle", "a green square", "a grey circle", None]
    # "a" is in more than half of the captions; "green", "grey" and "star" in fewer than 3;
    # "red" and "blue" (3 each) are rarer than "circle" (4) and win a tie with "square" (3)
    assert caption_keys(captions, group=3) == ["red"] * 3 + ["blue"] * 3 + ["circle", "square", "circle", None]


def test_grouped_sampler_keeps_groups_together_and_resumes():
    colours = ["red", "blue", "green", "cyan", "white", "pink", "teal"]
    captions = [f"a {c} {s} moves" for c in colours for s in ["circle", "square", "star", "cross"]] + ["silence"] * 3
    sampler = GroupedSampler(captions, seed=1, group=3)
    assert set(sampler.keys) == {*colours, "silence"}  # a colour (4 clips) is rarer than a shape (7)
    order = list(sampler)
    assert sorted(order) == list(range(len(captions)))
    # the full groups first (one of 3 per colour, and the 3 silent clips), then the 7 leftovers
    groups = [order[k:k + 3] for k in range(0, 24, 3)]
    assert all(len({sampler.keys[i] for i in g}) == 1 for g in groups)
    assert len({sampler.keys[g[0]] for g in groups}) == 8
    assert len({sampler.keys[i] for i in order[24:]}) == 7
    again = GroupedSampler(captions, seed=1, group=3)
    again.set_position(0, 5)
    assert list(again) == order[5:]
    again.set_position(1, 0)
    assert list(again) != order and sorted(again) == sorted(order)
    ranks = [list(GroupedSampler(captions, seed=1, group=3, rank=r, world=2)) for r in range(2)]
    assert [i for pair in zip(*ranks, strict=True) for i in pair] == order[:len(order) // 2 * 2]


def test_retrieval_metrics_on_known_ranks():
    sim = torch.eye(4)
    sim[1] = torch.tensor([0.0, 0.5, 0.9, 0.1])  # truth ranks 2nd
    sim[3] = torch.tensor([1.0, 0.9, 0.8, 0.1])  # truth ranks 4th
    assert ranks_of_truth(sim).tolist() == [1, 2, 1, 4]
    m = retrieval_metrics(sim)
    assert m["R@1"] == 50.0 and m["R@5"] == 100.0 and m["MedR"] == 1.0 and m["MeanR"] == 2.0


@pytest.mark.parametrize("n", [5, 64])
def test_retrieval_metrics_of_constant_scores_are_chance(n):
    """A collapsed model (every score equal) scores exactly chance: R@k = 100 k / N, mean and median
    rank (N + 1) / 2. Catches ranking the truth first among equal scores (the old `>` count gave
    R@1 = 100 here) and the pessimistic rank (R@1 = 0, rank N)."""
    m = retrieval_metrics(torch.ones(n, n))
    for k in (1, 5, 10, 50):
        assert m[f"R@{k}"] == pytest.approx(100.0 * min(k, n) / n, abs=1e-9), k
    assert m["MedR"] == m["MeanR"] == (n + 1) / 2 and m["N"] == n


def test_retrieval_metrics_split_a_tie_evenly():
    """Truth tied with one other score below one higher score: rank 2 or 3 with equal chance, so
    rank 2.5. Catches counting the tie for (rank 2) or against (rank 3) the truth."""
    sim = torch.tensor([[0.5, 0.9, 0.5, 0.1]] + [[0.0] * 4] * 3)
    sim[1:, 1:] = torch.eye(3)  # rows 1-3: the truth alone on top
    assert ranks_of_truth(sim).tolist() == [2.5, 1.0, 1.0, 1.0]
    m = retrieval_metrics(sim)
    assert m["R@1"] == 75.0 and m["MeanR"] == pytest.approx(5.5 / 4)


def test_retrieval_metrics_without_ties_are_unchanged():
    """Where no score ties the truth's, the ranks are the plain count of higher scores plus one."""
    sim = torch.randn(50, 50, generator=torch.Generator().manual_seed(0))
    plain = (sim > sim.diagonal()[:, None]).sum(dim=1) + 1
    assert ranks_of_truth(sim).tolist() == plain.float().tolist()
    m = retrieval_metrics(sim)
    for k in (1, 5, 10, 50):
        assert m[f"R@{k}"] == pytest.approx(100.0 * (plain <= k).float().mean().item()), k
    assert m["MedR"] == plain.float().median().item() and m["MeanR"] == pytest.approx(plain.float().mean().item())


def test_metrics_from_embeddings_scores_each_direction_from_its_own_side():
    """Six directions, six different answers worked out by hand: text is the identity, so
    text->video scores column i of `video` for caption i and video->text scores row j for clip
    j. Catches a direction scored the wrong way round (text->video reporting video->text's
    numbers) or under another direction's name, which symmetric test embeddings cannot see."""
    video = torch.tensor([[5.0, 3, 6], [0, 9, 3], [2, 6, 1]])
    audio = torch.tensor([[4.0, 7, 3], [8, 0, 6], [7, 9, 0]])
    # audio . video: a0 -> (59, 72, 53), a1 -> (76, 18, 22), a2 -> (62, 81, 68)
    ones = torch.ones(3, dtype=torch.bool)
    emb = {"text": torch.eye(3), "video": video, "audio": audio,
           "has_text": ones, "has_video": ones, "has_audio": ones}
    ranks = {  # each query's rank of its own candidate
        "text->video": [1, 1, 3],   # columns (5, 0, 2), (3, 9, 6), (6, 3, 1)
        "video->text": [2, 1, 3],   # rows (5, 3, 6), (0, 9, 3), (2, 6, 1)
        "text->audio": [3, 3, 3],   # columns (4, 8, 7), (7, 0, 9), (3, 6, 0)
        "audio->text": [2, 3, 3],   # rows (4, 7, 3), (8, 0, 6), (7, 9, 0)
        "audio->video": [2, 3, 2],  # 59 < 72; 18 < 76, 22; 68 < 81
        "video->audio": [3, 3, 1],  # (59, 76, 62), (72, 18, 81), (53, 22, 68)
    }
    results = metrics_from_embeddings(emb)
    assert set(results) == set(ranks)
    for direction, r in ranks.items():
        got = results[direction]
        expected = (100.0 * sum(x == 1 for x in r) / 3, sum(r) / 3, sorted(r)[1])
        assert (got["R@1"], got["MeanR"], got["MedR"]) == pytest.approx(expected), direction


def test_read_manifest_resolves_paths(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"video": "a.mp4", "text": "x", "split": "test"}\n{"video": "/abs/b.mp4"}\n')
    rows = read_manifest(tmp_path / "m.jsonl")
    assert rows[0].video == tmp_path / "a.mp4" and rows[1].video == Path("/abs/b.mp4")
    assert [r.split for r in rows] == ["test", "train"]
    # bad lines are skipped with their line numbers: tests/test_manifest.py
