"""vlsa.calibration: thresholds from held-out pairs, words for a score, the file kept with the checkpoint."""

import json

import numpy as np
import pytest
import torch

from vlsa.calibration import (
    CALIBRATION_NAME,
    EXACT,
    LEVELS,
    UNCALIBRATED,
    WEAK,
    Calibration,
    CalibrationError,
    KindCalibration,
    calibrate_kind,
    match_words,
    read_calibration,
)


def test_calibration_thresholds_monotone_and_false_pairs_reach_each_at_most_its_rate():
    """Each level's least score is reached by at most its share of false pairs (and is the least
    such score: one step lower lets in more), strong >= good >= fair, and the true shares are
    measured at those thresholds. Catches a threshold placed one false pair too low (off by one),
    quantiles taken from the wrong end, or the true share counted on the false pairs."""
    rng = np.random.default_rng(0)
    false, true = rng.normal(0.2, 0.1, 20_000), rng.normal(0.5, 0.1, 500)
    levels = calibrate_kind(true, false)
    assert list(levels.thresholds) == sorted(levels.thresholds, reverse=True)
    for (_, rate), least, true_share, false_share in zip(LEVELS, levels.thresholds, levels.true_share,
                                                         levels.false_share, strict=True):
        assert (false >= least).mean() <= rate < (false >= least - 2e-6).mean()
        assert false_share == pytest.approx((false >= least).mean(), abs=1e-5)
        assert true_share == pytest.approx((true >= least).mean(), abs=1e-4)
    assert (levels.true_pairs, levels.false_pairs) == (500, 20_000)
    with pytest.raises(CalibrationError, match="false pairs"):
        calibrate_kind(true, false[:999])  # too few to place 1 in 1,000


def test_calibration_words_by_the_kinds_thresholds_exact_and_uncalibrated():
    """A score gets the strictest level it reaches for its kind of search; 'exact match' from
    EXACT_COSINE; no words without a calibration of that kind. Catches a level starting above or
    below its threshold, one kind's thresholds used for another, and words made up without one."""
    words = [w for w, _ in LEVELS]
    kinds = {"text->audio": KindCalibration((0.5, 0.4, 0.3), (0.1, 0.5, 0.9), (0.001, 0.01, 0.05), 10, 1000),
             "audio->audio": KindCalibration((0.9, 0.8, 0.7), (0.1, 0.5, 0.9), (0.001, 0.01, 0.05), 10, 1000)}
    calibration = Calibration("abc", {}, kinds)
    scores = (0.5, 0.4999, 0.4, 0.3, 0.2999, -1.0)
    assert [match_words(s, "text->audio", calibration) for s in scores] == [*words[:2], words[1], words[2], WEAK,
                                                                              WEAK]
    assert match_words(0.75, "audio->audio", calibration) == words[2]
    assert match_words(0.75, "text->audio", calibration) == words[0]
    assert match_words(1 - 1e-5, "text->audio", calibration) == match_words(1.0, "video->video", None) == EXACT
    assert match_words(0.6, "video->video", calibration) == match_words(0.6, "text->audio", None) == UNCALIBRATED


def test_calibration_file_used_only_for_the_weights_it_was_made_for(tmp_path, caplog):
    """calibration.json round-trips; one made for other weights (another fingerprint), an
    unreadable one, one whose thresholds do not fall from strong to fair or whose counts are not
    numbers (1e400) is not used, with the reason logged. Catches a stale calibration's words shown
    for a retrained checkpoint, and an OverflowError escaping as a traceback."""
    rng = np.random.default_rng(1)
    kind = calibrate_kind(rng.normal(0.5, 0.1, 50), rng.normal(0.1, 0.1, 5000))
    calibration = Calibration("abc", {"split": "test", "rows": 100}, {"text->video": kind})
    path = calibration.save(tmp_path)
    assert path == tmp_path / CALIBRATION_NAME and read_calibration(tmp_path, "abc") == calibration
    assert read_calibration(tmp_path, "abd") is None and "made for weights abc" in caplog.text
    assert read_calibration(tmp_path / "none", "abc") is None and read_calibration(None, "abc") is None
    data = json.loads(path.read_text())
    data["kinds"]["text->video"]["thresholds"]["fair match"] = 2.0  # above 'good'
    path.write_text(json.dumps(data))
    assert read_calibration(tmp_path, "abc") is None and "falling from strong to fair" in caplog.text
    path.write_text("{")
    assert read_calibration(tmp_path, "abc") is None
    data["kinds"]["text->video"]["thresholds"]["fair match"] = 0.0
    data["kinds"]["text->video"]["false_pairs"] = 1e400  # JSON's infinity: no int
    path.write_text(json.dumps(data).replace("Infinity", "1e400"))
    assert read_calibration(tmp_path, "abc") is None and "bad field" in caplog.text


@pytest.mark.parametrize("name", ["real", "synthetic"])
def test_calibration_shipped_checkpoints_carry_one_made_for_their_weights(name):
    """Each shipped checkpoint has a calibration of its own weights for every kind of search the
    app offers (a tower's sound->sound too, where it has a tower), made on held-out rows. Catches a checkpoint retrained and shipped without
    `vlsa calibrate` (its words would be dropped as stale)."""
    from vlsa.api import VLSA
    from vlsa.calibration import KINDS
    from vlsa.checkpoint import SHIPPED
    from vlsa.vectors import TOWER_VECTORS

    folder = SHIPPED.parent / name
    model = VLSA.from_pretrained(folder)
    calibration = read_calibration(folder, model.fingerprint())
    offered = {k for k in KINDS if model.has_audio_tower or not k.endswith(TOWER_VECTORS)}
    assert calibration is not None and set(calibration.kinds) == offered
    assert calibration.made_on["split"] == "test"


def _words(checkpoint, caption: str, clips: dict[str, str]) -> dict[str, str]:
    """The words the checkpoint's calibration gives each clip's sound (and picture, "video" kind)
    for a search by `caption`: {f"{name} {modality}": words}."""
    from vlsa.api import VLSA

    model = VLSA.from_pretrained(checkpoint)
    calibration = read_calibration(checkpoint, model.fingerprint())
    text = model.embed_text([caption])[0]
    found = {}
    for modality, embed in (("audio", model.embed_audio), ("video", model.embed_video)):
        for name, score in zip(clips, (embed(list(clips.values())) @ text).tolist(), strict=True):
            found[f"{name} {modality}"] = match_words(score, f"text->{modality}", calibration)
    return found


@pytest.mark.slow  # loads the MiniLM text tower: ~20-70 s on a busy 2-core machine
def test_calibration_shipped_real_checkpoint_true_pair_good_false_pair_weak():
    """Issue 33's must-show on media the real-media checkpoint never trained on (the demo's held-out
    recordings, shipped in vlsa/assets/media): words find a glass breaking's own sound at least a
    "good match", and a door closing and a dog, for the same words, at most "weak". (About a
    third of text->sound true pairs reach "good" with this checkpoint, README; this one does. The
    thunder, the nearest wrong sound, reaches "fair": wrong results score that high one time in
    twenty.) Catches words from other thresholds than the checkpoint's text->sound ones (its
    text->picture ones call the door "fair"), and a calibration that is not read."""
    from vlsa.checkpoint import SHIPPED

    media = SHIPPED.parent / "media" / "clip"
    clips = {name: str(next(media.glob(f"*_{name}.mp4"))) for name in
             ("a_glass_breaks", "a_door_closes", "the_sound_of_a_dog")}
    found = _words(SHIPPED, "a glass breaks", clips)
    good = [w for w, _ in LEVELS[:2]]
    assert found["a_glass_breaks audio"] in good, found
    assert found["a_door_closes audio"] == found["the_sound_of_a_dog audio"] == WEAK, found


@pytest.mark.slow  # renders two clips: ~10-20 s on a busy 2-core machine
def test_calibration_shipped_synthetic_checkpoint_true_pair_good_false_pair_weak(tmp_path):
    """The must-show for the synthetic-only checkpoint, on synthetic clips it never trained on (a
    test split of another seed): a clip's caption calls its own picture and sound at least "good",
    another clip's at most "weak". Catches the thresholds of one kind used for another (its
    sound->sound ones call its own sound "fair"), and a calibration that is not read."""
    from synth import generate
    from vlsa.checkpoint import SYNTHETIC

    manifest = generate(tmp_path, n=2, seed=41, split="test")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    clips = {name: str(tmp_path / row["video"]) for name, row in zip(("own", "other"), rows, strict=True)}
    found = _words(SYNTHETIC, rows[0]["text"], clips)
    good = [w for w, _ in LEVELS[:2]]
    assert found["own audio"] in good and found["own video"] in good, (rows[0]["text"], rows[1]["text"], found)
    assert found["other audio"] == found["other video"] == WEAK, (rows[0]["text"], rows[1]["text"], found)


def test_calibration_of_a_tower_checkpoint_scores_sounds_by_the_towers_own_vectors():
    """A tower checkpoint's sound->sound search compares tower vectors with tower vectors: its
    pairs are scored on those (here the tower hears rows 0 and 1 alike, the joint vectors do
    not), and a checkpoint without a tower has no such kind. Catches the tower kind scored
    with the joint query vectors (a shape error, or the joint cosine)."""
    from train.calibrate import pair_scores
    from train.data import Row

    rows = [Row(video=None, audio=None, text=t) for t in ("a dog barks", "a dog barks", "a bell rings")]
    joint = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    tower = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0.0], [1.0, 0.0, 0.1], [0.0, 0.0, 1.0]]), dim=-1)
    has, none = torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    emb = {"audio": joint, "video": torch.zeros(3, 2), "text": joint, "has_audio": has, "has_video": none,
           "has_text": has, "index": torch.arange(3)}
    assert "audio->audio_tower" not in pair_scores(emb, rows)
    true, false = pair_scores({**emb, "audio_tower": tower, "has_audio_tower": has}, rows)["audio->audio_tower"]
    np.testing.assert_allclose(sorted(true), [float(tower[0] @ tower[1])] * 2, rtol=1e-6)
    assert len(false) == 4 and max(false) < 0.2
