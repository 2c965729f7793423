"""`vlsa fit-tower` (train/tower_fit.py): a pretrained audio tower fitted into a trained
checkpoint's joint space on cached features, everything but the audio side frozen."""

from __future__ import annotations

import json

import pytest
import torch
from mediagen import make_audio

from train import tower_fit
from train.data import Row
from train.tower_fit import AUDIO_SIDE, TEXT_SIDE, Features, FitSettings, fit_towers, row_features
from vlsa import VLSA
from vlsa.checkpoint import load_config, load_extra, load_weights

CAPTIONS = ("a dog barks", "a bell rings", "glass breaks", "a car engine starts")


def clustered_features(model: VLSA, per_caption: int = 8) -> tuple[list[Row], Features]:
    """Rows whose tower vectors lie in one tight cluster per caption (the tower 'hears' the
    kinds apart), every other row with a picture embedding too, and a picture without sound."""
    g = torch.Generator().manual_seed(1)
    width, n = model.audio_tower.width, per_caption * len(CAPTIONS)
    centres = torch.nn.functional.normalize(torch.randn(len(CAPTIONS), width, generator=g), dim=-1)
    label = torch.arange(n) % len(CAPTIONS)
    tower = torch.nn.functional.normalize(centres[label] + 0.05 * torch.randn(n, width, generator=g), dim=-1)
    rows = [Row(video=None, audio=None, text=CAPTIONS[k], captions=[CAPTIONS[k], f"the sound: {CAPTIONS[k]}"])
            for k in label.tolist()]
    video = torch.nn.functional.normalize(torch.randn(n + 1, model.config.embed_dim, generator=g), dim=-1)
    rows.append(Row(video=None, audio=None, text="an emoji of a cyclone"))  # a picture: no sound to fit
    return rows, Features(tower=torch.cat([tower, torch.zeros(1, width)]), video=video,
                          has_audio=torch.arange(n + 1) < n, has_video=torch.arange(n + 1) % 2 == 0)


def distinct_words(model: VLSA, monkeypatch) -> None:
    """The model's text embeddings replaced by a fixed random vector per caption: a fresh tiny
    model says every caption almost alike (cosines above 0.99), a trained one does not."""
    table: dict[str, torch.Tensor] = {}
    g = torch.Generator().manual_seed(2)

    def embed_text(texts):
        for t in texts:
            table.setdefault(t, torch.nn.functional.normalize(torch.randn(model.config.embed_dim, generator=g), dim=0))
        return torch.stack([table[t] for t in texts])
    monkeypatch.setattr(model, "embed_text", embed_text)


def test_fit_audio_side_learns_the_captions_and_leaves_every_other_weight_as_it_was(small_sound_model, monkeypatch):
    """After the fit, each caption's nearest sounds are its own (chance: a quarter) and every
    weight outside the audio adapter, pool norm and projection is bit-identical to before, the
    audio pool norm's statistics the plain mean over the rows. Catches: any other weight moved
    (every search without sound would move with it), the caption term dropped (the sounds
    matched to the pictures only), the pool statistics left at their running averages."""
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"audio.tower": "small"}).eval()
    distinct_words(model, monkeypatch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows, feats = clustered_features(model)
    fit_towers(model, rows, feats, FitSettings(epochs=30, batch_size=16, lr=3e-3, text=False))
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(AUDIO_SIDE) for k in changed), sorted(changed)
    assert any(k.startswith("audio_adapter.") for k in changed)
    with torch.no_grad():
        audio = model.join_tower_audio(feats.tower[feats.has_audio])
    text = model.embed_text(list(CAPTIONS))
    nearest = (text @ audio.T).topk(4, dim=1).indices % len(CAPTIONS)
    assert (nearest == torch.arange(len(CAPTIONS))[:, None]).all(), nearest
    with torch.no_grad():  # precise statistics: the plain mean over every row's adapter output
        pooled = model.audio_adapter(feats.tower[feats.has_audio])
    torch.testing.assert_close(model.pool_norm["audio"].running_mean, pooled.mean(0), atol=1e-5, rtol=1e-4)


def test_fit_towers_with_text_fits_the_words_onto_the_frozen_pictures():
    """With the text side (real MiniLM), pictures are matched with their captions too: after
    the fit each caption finds its own pictures and its own sounds, and only the audio and
    text sides moved. Catches the words<->pictures term dropped (the words leave the frozen
    pictures), the text side left frozen or trained without its tower's sentence vectors."""
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"audio.tower": "aisfx", "text.tower": "all-minilm-l6-v2",
                                        "text.tokenizer": "all-minilm-l6-v2", "text.vocab_size": 30522}).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    n = 8 * len(CAPTIONS)
    label = torch.arange(n) % len(CAPTIONS)
    centres = torch.nn.functional.normalize(torch.randn(len(CAPTIONS), 512, generator=g), dim=-1)
    tower = torch.nn.functional.normalize(centres[label] + 0.05 * torch.randn(n, 512, generator=g), dim=-1)
    looks = torch.nn.functional.normalize(torch.randn(len(CAPTIONS), model.config.embed_dim, generator=g), dim=-1)
    rows = [Row(video=None, audio=None, text=CAPTIONS[k]) for k in label.tolist()]
    rows += [Row(video=None, audio=None, text=CAPTIONS[k]) for k in label.tolist()]  # pictures, no sound
    feats = Features(tower=torch.cat([tower, torch.zeros(n, 512)]), video=torch.cat([torch.zeros(n, looks.shape[1]), looks[label]]),
                     has_audio=torch.arange(2 * n) < n, has_video=torch.arange(2 * n) >= n)
    fit_towers(model, rows, feats, FitSettings(epochs=40, batch_size=16, lr=3e-3))
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert all(k.startswith(AUDIO_SIDE + TEXT_SIDE) for k in changed), sorted(changed)
    assert any(k.startswith("text_adapter.") for k in changed)
    words = model.embed_text(list(CAPTIONS))
    assert ((words @ looks.T).argmax(1) == torch.arange(len(CAPTIONS))).all()
    with torch.no_grad():
        sounds = model.join_tower_audio(tower)
    assert ((words @ sounds.T).topk(4, dim=1).indices % len(CAPTIONS) == torch.arange(len(CAPTIONS))[:, None]).all()


def test_row_features_resume_from_their_chunks_and_never_reuse_another_checkpoints(
        small_sound_model, tmp_path, monkeypatch):
    """A second run reads the chunks a first run wrote and embeds only the missing one; another
    checkpoint (its picture side differs), or a file rendered again under the same name, gets a
    folder of its own. Catches: every chunk embedded again (a killed run starting from scratch),
    a chunk of another checkpoint reused, a stale vector of a replaced file reused."""
    monkeypatch.setattr(tower_fit, "CHUNK_ROWS", 2)
    rows = []
    for k, hz in enumerate((300.0, 900.0, 2700.0)):
        make_audio(tmp_path / f"{k}.wav", 2.0, sample_rate=44100, tone_hz=hz)
        rows.append(Row(video=None, audio=tmp_path / f"{k}.wav", text=CAPTIONS[k]))
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"audio.tower": "small"}).eval()
    first = row_features(model, "ckpt-a", rows, tmp_path / "features", workers=0)
    assert first.has_audio.all() and not first.has_video.any()
    (chunk,) = (tmp_path / "features").glob("*/chunk-00001.npz")
    chunk.unlink()  # the run was killed before its last chunk
    embedded = []
    real = tower_fit._embed_chunk
    monkeypatch.setattr(tower_fit, "_embed_chunk", lambda m, r, p, w: (embedded.append(len(r)), real(m, r, p, w)))
    again = row_features(model, "ckpt-a", rows, tmp_path / "features", workers=0)
    assert embedded == [1]
    torch.testing.assert_close(again.tower, first.tower)
    row_features(model, "ckpt-b", rows, tmp_path / "features", workers=0)
    assert embedded == [1, 2, 1]
    make_audio(tmp_path / "0.wav", 2.5, sample_rate=44100, tone_hz=500.0)  # rendered again, same name
    row_features(model, "ckpt-a", rows, tmp_path / "features", workers=0)
    assert embedded == [1, 2, 1, 2, 1]


def test_cli_fit_tower_gives_a_checkpoint_a_fitted_tower(small_sound_model, tmp_path):
    """`vlsa fit-tower --init C`: C has no tower; the result has one, its adapter fitted, C's
    text weights unchanged, and what it was fitted on recorded, by the manifest's last two path
    parts. Catches the tower not set on a checkpoint without one, the adapter not saved, the
    record missing, and the manifest's whole path (a development machine's folders) in it."""
    from click.testing import CliRunner

    from vlsa.cli import cli

    torch.manual_seed(0)
    init = VLSA.from_preset("tiny").save_pretrained(tmp_path / "init")
    with open(tmp_path / "m.jsonl", "w") as f:
        for k, hz in enumerate((300.0, 900.0, 2700.0, 5000.0)):
            make_audio(tmp_path / f"{k}.wav", 2.0, sample_rate=44100, tone_hz=hz)
            f.write(json.dumps({"audio": f"{k}.wav", "text": CAPTIONS[k], "split": "train"}) + "\n")
    result = CliRunner().invoke(cli, ["fit-tower", "--init", str(init), "--manifest", str(tmp_path / "m.jsonl"),
                                      "--tower", "small", "--out", str(tmp_path / "run"), "--epochs", "3",
                                      "--batch-size", "4", "--workers", "0", "--eval-split", ""])
    assert result.exit_code == 0, result.output
    out = tmp_path / "run" / "checkpoint"
    assert load_config(out).audio.tower == "small"
    weights, start = load_weights(out), load_weights(init)
    assert any(k.startswith("audio_adapter.") for k in weights)
    assert all(torch.equal(weights[k], v) for k, v in start.items() if k.startswith(("text_adapter.", "proj.text.")))
    record = load_extra(out)["fit_tower"]
    assert record["sounds"] == 4
    assert record["manifest"] == f"{tmp_path.name}/m.jsonl"  # no machine's folders in a checkpoint that may ship


@pytest.mark.parametrize("option", [("--epochs", "0"), ("--batch-size", "1"), ("--temperature", "0"), ("--lr", "-1")])
def test_cli_fit_tower_refuses_numbers_it_cannot_fit_with_in_one_line(tmp_path, option):
    """Zero epochs (an empty schedule), a batch of one (no negatives), a temperature or learning
    rate of zero or less: refused by the command line before anything is read, in one line.
    Catches the options taken as they come (a ZeroDivisionError or a scheduler's traceback)."""
    from click.testing import CliRunner

    from vlsa.cli import cli

    (tmp_path / "m.jsonl").write_text("")
    result = CliRunner().invoke(cli, ["fit-tower", "--init", str(tmp_path), "--manifest", str(tmp_path / "m.jsonl"),
                                      *option])
    assert result.exit_code == 2 and f"Invalid value for '{option[0]}'" in result.output, result.output


def test_residual_tower_starts_as_the_checkpoint_it_is_given_to(small_sound_model, tmp_path):
    """audio.tower_residual: a checkpoint given a fresh tower this way embeds a sound exactly as
    before (its own audio path, on the map of the tower's waveform resampled to the map's rate),
    and once the adapter moves the tower's hearing is added to it, not put in its place. Catches
    the shared path's audio not added (the demo's tones lost), an adapter that does not start
    at zero, and the shared path fed another map than its own front end's."""
    import torchaudio

    from vlsa.audio_tower import tower_input
    from vlsa.checkpoint import load_into
    from vlsa.config import apply_overrides

    torch.manual_seed(0)
    plain = VLSA.from_preset("tiny").eval()
    saved = plain.save_pretrained(tmp_path / "plain")
    config = apply_overrides(plain.config, {"audio.tower": "small", "audio.tower_residual": True})
    residual = load_into(VLSA(config), saved, ("audio_adapter",)).eval()
    make_audio(tmp_path / "tone.wav", 2.0, sample_rate=44100, tone_hz=700.0)
    wave = residual.prepare_audio(tmp_path / "tone.wav")[None]
    heard = plain.frontend(torchaudio.functional.resample(wave, 44100, plain.config.audio.sample_rate))
    with torch.no_grad():
        before = plain.embed_audio_input(heard)
        torch.testing.assert_close(residual.embed_audio_input(wave), before)
        torch.nn.init.normal_(residual.audio_adapter[2].weight, std=0.05)
        moved = residual.embed_audio_input(wave)
        z = residual.audio_tower(wave)
        alone = residual.pool(residual.audio_adapter(z)[:, None], "audio")
        both = residual.pool((residual.audio_adapter(z) + residual.shared_audio(wave))[:, None], "audio")
    assert not torch.allclose(moved, before, atol=1e-3) and not torch.allclose(moved, alone, atol=1e-3)
    torch.testing.assert_close(moved, both)
    assert tower_input(wave[0], 44100, residual.config).shape == wave[0].shape


def test_fit_keeps_the_words_of_pictures_where_the_checkpoint_had_them():
    """The text side is fitted with its pool norm's statistics left as they were and the words
    of pictures held near the checkpoint's (FitSettings.anchor): with the anchor they stay
    closer to where they were than without, and the statistics are bit-identical. Catches the
    anchor term dropped or given the fitted words as their own target, and the text pool norm
    trained or re-estimated (every caption shifted alike: the picture maps' peaks leave the
    objects, docs/REAL_MEDIA.md)."""
    def fitted(anchor: float) -> tuple[torch.Tensor, torch.Tensor, VLSA]:
        torch.manual_seed(0)
        model = VLSA.from_preset("tiny", **{"audio.tower": "aisfx", "text.tower": "all-minilm-l6-v2",
                                            "text.tokenizer": "all-minilm-l6-v2", "text.vocab_size": 30522}).eval()
        g = torch.Generator().manual_seed(3)
        n = 8 * len(CAPTIONS)
        label = torch.arange(n) % len(CAPTIONS)
        tower = torch.nn.functional.normalize(torch.randn(n, 512, generator=g), dim=-1)
        looks = torch.nn.functional.normalize(torch.randn(len(CAPTIONS), model.config.embed_dim, generator=g), dim=-1)
        rows = [Row(video=None, audio=None, text=CAPTIONS[k]) for k in label.tolist()] * 2
        feats = Features(tower=torch.cat([tower, torch.zeros(n, 512)]),
                         video=torch.cat([torch.zeros(n, looks.shape[1]), looks[label]]),
                         has_audio=torch.arange(2 * n) < n, has_video=torch.arange(2 * n) >= n)
        before = model.embed_text(list(CAPTIONS))
        fit_towers(model, rows, feats, FitSettings(epochs=20, batch_size=16, lr=3e-3, anchor=anchor))
        return before, model.embed_text(list(CAPTIONS)), model

    start, free, _ = fitted(0.0)
    same, held, model = fitted(20.0)
    torch.testing.assert_close(start, same)
    kept_free, kept_held = (free * start).sum(-1).mean(), (held * start).sum(-1).mean()
    assert kept_held > kept_free + 0.1, (kept_held, kept_free)
    fresh = VLSA.from_preset("tiny", **{"audio.tower": "aisfx", "text.tower": "all-minilm-l6-v2",
                                        "text.tokenizer": "all-minilm-l6-v2", "text.vocab_size": 30522})
    for key in ("running_mean", "running_var"):
        assert torch.equal(getattr(model.pool_norm["text"], key), getattr(fresh.pool_norm["text"], key))


def test_row_features_of_a_residual_tower_keep_the_shared_paths_audio(small_sound_model, tmp_path):
    """With audio.tower_residual each row's features hold the shared path's pooled audio beside
    the tower's vector, as the model computes it for that sound, in a folder of their own.
    Catches the shared audio not kept (the fit would join the adapter with nothing) or kept
    from another sound, and a tower-only run's chunks reused for a residual one."""
    from vlsa.audio_tower import tower_input

    rows = []
    for k, hz in enumerate((300.0, 2700.0)):
        make_audio(tmp_path / f"{k}.wav", 2.0, sample_rate=44100, tone_hz=hz)
        rows.append(Row(video=None, audio=tmp_path / f"{k}.wav", text=CAPTIONS[k]))
    torch.manual_seed(0)
    plain = VLSA.from_preset("tiny", **{"audio.tower": "small"}).eval()
    residual = VLSA.from_preset("tiny", **{"audio.tower": "small", "audio.tower_residual": True}).eval()
    residual.load_state_dict(plain.state_dict())
    assert row_features(plain, "ckpt", rows, tmp_path / "features", workers=0).shared is None
    feats = row_features(residual, "ckpt", rows, tmp_path / "features", workers=0)
    assert len(list((tmp_path / "features").iterdir())) == 2
    from vlsa.media import load_clip

    waves = torch.stack([tower_input(load_clip(r.audio, 0.0, residual.config.clip_seconds, residual.config.video,
                                               residual.config.audio, tower_rate=44100).tower_wave, 44100,
                                     residual.config) for r in rows])
    with torch.no_grad():
        torch.testing.assert_close(feats.shared, residual.shared_audio(waves), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("flag", ["--no-residual", "--residual"])
def test_cli_fit_tower_refuses_to_change_how_an_init_with_a_tower_hears(small_sound_model, tmp_path, flag):
    """An --init that already has a tower keeps how it hears: a --residual or --no-residual
    that says otherwise is refused in one line before anything is read, not ignored (the output
    would say the opposite of what was asked). Catches the flag dropped for such an --init."""
    from click.testing import CliRunner

    from vlsa.cli import cli

    residual = flag == "--no-residual"  # the --init is what the flag is not
    init = VLSA.from_preset("tiny", **{"audio.tower": "small", "audio.tower_residual": residual}).save_pretrained(
        tmp_path / "init")
    (tmp_path / "m.jsonl").write_text("")
    result = CliRunner().invoke(cli, ["fit-tower", "--init", str(init), "--manifest", str(tmp_path / "m.jsonl"), flag])
    assert result.exit_code == 2 and f"{flag} cannot change it" in result.output, result.output
