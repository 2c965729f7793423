"""Keeping a teacher's heatmaps (train/map_teacher.py): which clips teach, what the teacher's map
is, and the term that teaches its shape. On random tiny models and tensors: no media, no training
run (tests/test_train.py runs `vlsa train --map-teacher`)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from test_model import random_batch

from train.map_teacher import MapTeacher, _pearson, map_distillation
from vlsa.api import VLSA
from vlsa.config import preset_config


def tiny(seed: int) -> VLSA:
    torch.manual_seed(seed)
    return VLSA(preset_config("tiny")).eval()


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher") / "checkpoint"
    tiny(0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def teacher(teacher_folder):
    return MapTeacher(str(teacher_folder), tiny(1), torch.device("cpu"))


@pytest.fixture(scope="module")
def known_batch(teacher):
    return batch_with_known_and_unknown_rows(teacher.model)


def sound_and_video_embeddings(model: VLSA, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return (model.pool(model.encode_audio(batch["audio"]), "audio"),
                model.pool(model.encode_video(batch["video"]), "video"))


def batch_with_known_and_unknown_rows(teacher: VLSA, B: int = 8) -> tuple[dict, torch.Tensor]:
    """A random batch where row 1 has no sound, row 2 no caption, rows 3 and 4 the same sound,
    and the teacher picks some rows' own videos from their sounds and not others' (the seed is
    searched for that); with the rows it knows."""
    for seed in range(100):
        batch = random_batch(teacher.config, B=B, seed=seed)
        batch["audio"][4] = batch["audio"][3]
        batch["has_audio"][1] = False
        batch["has_text"][2] = False
        sounds, videos = sound_and_video_embeddings(teacher, batch)
        knows = (sounds @ videos.T).argmax(dim=1) == torch.arange(B)
        knows &= batch["has_audio"] & batch["has_text"]
        if 1 <= knows.sum() < B - 3:
            return batch, knows.nonzero()[:, 0]
    raise AssertionError("no seed gives a batch with rows known and unknown")


def test_only_clips_whose_pairing_the_teacher_knows_teach(teacher, known_batch):
    """The rows that teach are exactly those whose sound picks their own video among the batch's
    videos, and never a row without sound or caption; of two rows with one sound, at most one.
    Catches the gate removed (every row with sound and caption teaching, both twins among them)
    and a row's video looked up by its batch index among the videos only (wrong once a row
    without video comes first)."""
    batch, known = known_batch
    rows, maps = teacher.targets(batch)
    assert rows.tolist() == known.tolist()
    assert 1 not in rows and 2 not in rows and not {3, 4} <= set(rows.tolist())
    assert maps.shape == (len(rows), teacher.model.config.video.num_patches)

    # a row without video before the others: rows keep their batch index, videos their own place
    shifted = {k: torch.cat([v[:1], v]) if torch.is_tensor(v) else v for k, v in batch.items()}
    shifted["has_video"] = shifted["has_video"].clone()
    shifted["has_video"][0] = False
    shifted_rows, shifted_maps = teacher.targets(shifted)
    assert shifted_rows.tolist() == (known + 1).tolist()
    torch.testing.assert_close(shifted_maps, maps, rtol=1e-4, atol=1e-5)


def test_the_teachers_map_is_its_heatmap_against_the_clips_sound(teacher, known_batch):
    """Each target has the shape of the app's heatmap (VLSA.patch_contributions) of that clip
    against its own sound's embedding. Catches the map drawn against the clip's video embedding
    or another row's sound."""
    batch, _ = known_batch
    rows, maps = teacher.targets(batch)
    sounds, _ = sound_and_video_embeddings(teacher.model, batch)
    with torch.no_grad():
        for row, target in zip(rows.tolist(), maps, strict=True):
            tokens = teacher.model.encode_video(batch["video"][row:row + 1])
            heat = teacher.model.patch_contributions(tokens, "video", sounds[row])[0]
            assert _pearson(heat, target) > 0.9999


def test_map_distillation_teaches_the_teachers_shape_and_leaves_the_teacher_alone(teacher, known_batch):
    """A student that is the teacher scores 0; a different student scores well above 0 and,
    trained on the term alone, draws maps much closer to the teacher's, through its video
    encoder, while the teacher's weights stay as they were and take no gradient. Catches the
    query left out of the student's map, the maps compared by value instead of shape (the
    student's scale is not the teacher's), and gradients that do not reach the student."""
    batch, _ = known_batch
    rows, maps = teacher.targets(batch)
    sounds, _ = sound_and_video_embeddings(teacher.model, batch)

    same = copy.deepcopy(teacher.model)
    assert map_distillation(same, batch, {"audio": sounds}, rows, maps).item() < 1e-5
    assert map_distillation(same, batch, {"audio": 3 * sounds}, rows, maps).item() < 1e-5  # the shape only

    student = tiny(2)
    before_teacher = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    query = {"audio": torch.nn.functional.normalize(torch.randn(len(batch["audio"]), student.config.embed_dim), dim=-1)}
    start = map_distillation(student, batch, query, rows, maps).item()
    assert start > 0.3
    opt = torch.optim.Adam(student.encoder.parameters(), lr=1e-3)
    for _ in range(30):
        loss = map_distillation(student, batch, query, rows, maps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < start / 2, (start, loss.item())
    assert all(p.grad is None for p in teacher.model.parameters())
    for k, v in teacher.model.state_dict().items():
        assert torch.equal(v, before_teacher[k]), k


def test_no_row_teaches_gives_zero(teacher):
    """Without a row that teaches the term is 0 and keeps the graph intact (no NaN from a mean
    over nothing), and a batch with a single video teaches nothing (its sound has no other video
    to pick). Catches a mean over an empty set of rows, and that lone row handed on with no map."""
    lone = random_batch(teacher.model.config, B=3)
    lone["has_video"][1:] = False
    rows, maps = teacher.targets(lone)
    assert len(rows) == 0 and len(maps) == 0
    student = tiny(2)
    batch = random_batch(student.config, B=4)
    loss = map_distillation(student, batch, {"audio": torch.randn(4, student.config.embed_dim)},
                            torch.zeros(0, dtype=torch.long), torch.zeros(0, 0))
    assert loss.item() == 0.0


def test_map_teacher_takes_a_student_whose_sound_embedding_comes_from_a_tower(teacher_folder):
    """A student with a pretrained audio tower reads the same spectrogram as a shared-audio teacher,
    so the teacher is accepted (it was refused, which blocked training a tower model with a map
    teacher); a student whose spectrogram differs is still refused. Seen to fail with the full
    AudioConfig compared again (the tower student refused)."""
    import dataclasses

    tower = preset_config("tiny")
    tower.audio = dataclasses.replace(tower.audio, tower="aisfx")
    MapTeacher(str(teacher_folder), VLSA(tower), torch.device("cpu"))
    other = preset_config("tiny")
    other.audio = dataclasses.replace(other.audio, bins=other.audio.bins // 2)
    with pytest.raises(ValueError, match="audio input differs"):
        MapTeacher(str(teacher_folder), VLSA(other), torch.device("cpu"))


def test_a_teacher_that_hears_through_a_tower_pairs_sounds_by_its_own_sound_vectors(
        small_sound_model, tmp_path, monkeypatch):
    """A teacher with a pretrained tower beside its own audio path (audio.tower_residual, as the
    default checkpoint) picks each sound's picture by its own sound vectors, those the tower and
    the shared path make together from the tower's waveform, not by the shared path alone through
    a projection fitted for the sum; a student of the same inputs is accepted. Catches the shared
    path pooled alone (the old line: the teacher's 'own' pairings were another model's)."""
    from vlsa.audio_tower import TOWER_WAVE

    config = preset_config("tiny")
    config.audio = dataclasses.replace(config.audio, tower="small", tower_residual=True)
    torch.manual_seed(0)
    VLSA(config).save_pretrained(tmp_path / "teacher")
    teacher = MapTeacher(str(tmp_path / "teacher"), VLSA(config), torch.device("cpu"))
    batch = random_batch(config, B=4, seed=0)
    batch[TOWER_WAVE] = torch.randn(4, round(config.audio.clip_seconds * 44100))
    read = []
    real = teacher.model.embed_audio_input
    monkeypatch.setattr(teacher.model, "embed_audio_input", lambda x, *a: read.append(x) or real(x, *a))
    teacher.targets(batch)
    assert len(read) == 1 and torch.equal(read[0], batch[TOWER_WAVE])
