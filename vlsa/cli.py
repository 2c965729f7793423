"""The `vlsa` command: a click group.

Commands of the packages built on vlsa/ (train/, catalog/, app/) register themselves through the
`vlsa.commands` entry-point group in pyproject.toml and are imported only when invoked, so vlsa/
never imports them and `vlsa --help` stays fast.

Errors a user can cause (bad file, bad option, missing checkpoint) leave as one line on stderr and
exit code 1; `VLSA_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import sys
from importlib import metadata

import click

from vlsa import __version__
from vlsa.errors import UserError, one_line

ENTRY_POINT_GROUP = "vlsa.commands"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


class PluginGroup(click.Group):
    """A group that also lists and lazily loads the commands registered as entry points."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_entry_points()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        ep = _entry_points().get(name)
        return ep.load() if ep is not None else None


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vlsa")
def cli() -> None:
    """VLSA: train a video-audio-text encoder, index a media library, search it."""


# What each piece is for: one line of `vlsa doctor`. REQUIRED: every command needs them.
REQUIRED = {
    "torchaudio": "audio spectrograms",
    "av": "decoding and writing media (PyAV)",
    "open_clip": "the CLIP tokenizer's vocabulary",
    "safetensors": "checkpoint weights",
    "sqlite_utils": "the catalog (vlsa index, vlsa search)",
    "transformers": "the default checkpoint's text tower (reading all-MiniLM-L6-v2) and Hugging Face tokenizers",
}
# OPTIONAL: vlsa works without them; only what is named here needs them.
OPTIONAL = {
    "gradio": "the search app (vlsa app, vlsa demo)",
    "tensorboard": "training curves (tensorboard --logdir runs/)",
    "onnxruntime": "fast text searches: a catalog's text export, run without torch (else the model embeds the words)",
    "onnx": "writing that export (vlsa index, vlsa demo)",
}


# Where a module's distribution (its name on PyPI) is not the module's name.
DISTRIBUTIONS = {"open_clip": "open_clip_torch"}


def _piece(module: str, load: bool = False) -> str:
    """The installed version of a module, else 'not installed' or why it does not load: one line,
    in words (no exception class names).

    Read from the package's metadata without importing it unless `load`: importing them all
    (gradio, transformers, open_clip with torchvision, tensorboard) was most of the 8-19 s that
    `vlsa doctor` took (docs/PERFORMANCE.md); `vlsa doctor --load` still imports each."""
    if load:
        return _loaded_piece(module)
    try:
        found = importlib.util.find_spec(module)  # locates the files without running its code
    except (ImportError, ValueError) as exc:
        return f"does not load: {one_line(exc)}"
    if found is None:
        return "not installed"
    try:
        return metadata.version(DISTRIBUTIONS.get(module, module))
    except metadata.PackageNotFoundError:
        return "installed"


def _loaded_piece(module: str) -> str:
    """_piece by importing the module: also finds one that is installed but fails to load."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return "not installed"
        return f"does not load: {one_line(exc)}"
    except Exception as exc:  # doctor reports any import failure, whatever its type
        return f"does not load: {one_line(exc)}"
    try:
        return str(getattr(mod, "__version__", None) or metadata.version(DISTRIBUTIONS.get(module, module)))
    except metadata.PackageNotFoundError:
        return "installed"


def doctor_report(load: bool = False) -> dict[str, object]:
    """What is installed and usable: versions, device, required and optional pieces (imported
    to see that they load when `load`, else found from their metadata)."""
    import torch

    report: dict[str, object] = {
        "vlsa": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
    }
    for module, use in REQUIRED.items():
        status = _piece(module, load)
        loaded = not status.startswith(("not installed", "does not load"))
        report[module] = status if loaded else f"{status} · required, for {use}: pip install -e ."
    for module, use in OPTIONAL.items():
        report[module] = f"{_piece(module, load)} · optional, for {use}"
    report["text_tower"] = _text_tower_status()
    report["audio_tower"] = _audio_tower_status()
    report["sqlite_vec"] = _sqlite_vec_status()
    try:
        from vlsa.config import TextConfig
        from vlsa.tokenizer import build_tokenizer

        build_tokenizer(TextConfig())(["offline tokenizer check"])
        report["tokenizer"] = "clip BPE loads offline"
    except Exception as exc:  # reported, not raised: doctor must always print its report
        report["tokenizer"] = f"failed: {one_line(exc)}"
    report["commands"] = sorted(_entry_points())
    return report


def _text_tower_status() -> str:
    """The default checkpoint's pretrained sentence encoder: its package's files found (never its
    code run) and its weights the pinned ones, else the one-line reason, which says how to install."""
    from vlsa.text_tower import pretrained_folder

    use = "required, for the default checkpoint's text tower (all-MiniLM-L6-v2)"
    try:
        pretrained_folder("all-minilm-l6-v2")
        return f"files found, weights as pinned · {use}"
    except ValueError as exc:
        return f"{one_line(exc)} · {use}"


def _audio_tower_status() -> str:
    """The pretrained sound encoder (audio.tower / audio.teacher): its package's checkpoint found
    (never its code run) and the pinned file, else the one-line reason, which says how to install."""
    from vlsa.audio_tower import checkpoint_file
    from vlsa.checkpoint import load_config, shipped_checkpoint

    shipped = shipped_checkpoint()
    try:
        needed = shipped is not None and load_config(shipped).audio.tower == "aisfx"
    except ValueError:  # reported, not raised: doctor must always print its report
        needed = False
    if needed:
        use = "required, for the default checkpoint's sound tower (aisfx)"
    else:
        use = "optional, for audio.tower=aisfx and audio.teacher=aisfx (the aisfx sound encoder)"
    try:
        checkpoint_file("aisfx")
        return f"checkpoint found, as pinned · {use}"
    except ValueError as exc:
        return f"{one_line(exc)} · {use}"


def _sqlite_vec_status() -> str:
    from vlsa import sqlitevec

    use = "optional, for vlsa search --backend sqlite-vec (the default matrix scan needs nothing)"
    try:
        conn = sqlitevec.connect()
        try:
            (version,) = conn.execute("select vec_version()").fetchone()
        finally:
            conn.close()
        return f"loads ({version}, through sqlean) · {use}"
    except Exception:  # reported, not raised: doctor must always print its report
        return f"does not load · {use}"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--load", is_flag=True, help="Import each piece to see that it loads, as a command would "
              "(seconds more; without it their versions are read from the installed metadata).")
def doctor(as_json: bool, load: bool) -> None:
    """Versions, device, and which optional pieces are installed (--load: that they load)."""
    report = doctor_report(load)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    width = max(len(k) for k in report)
    for key, value in report.items():
        if isinstance(value, list):
            value = ", ".join(value) or "(none)"
        click.echo(f"{key:<{width}}  {value}")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--preset", default="tiny", show_default=True, help="Front-end sizes to decode with.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def probe(files: tuple[str, ...], preset: str, as_json: bool) -> None:
    """Decode FILES as the model would: duration, tracks, and whether a clip loads.

    Exit code 1 if any file cannot be decoded; each failure is one line on stderr.
    """
    from vlsa.config import preset_config
    from vlsa.media import MediaError, load_clip
    from vlsa.media import probe as probe_file

    cfg = preset_config(preset)
    failed = 0
    for path in files:
        try:
            info = probe_file(path)
            clip = load_clip(path, 0.0, None, cfg.video, cfg.audio)
        except MediaError as exc:
            failed += 1
            click.echo(f"error: {one_line(exc)}", err=True)
            continue
        record = {"path": path, "duration": round(info.duration, 3), "video": clip.has_video,
                  "audio": clip.has_audio}
        if as_json:
            click.echo(json.dumps(record))
        else:
            tracks = "+".join(t for t in ("video", "audio") if record[t]) or "none"
            click.echo(f"{path}\t{record['duration']:.2f} s\t{tracks}")
    if failed:
        raise UserError(f"{failed} of {len(files)} files could not be decoded")


def main() -> None:
    """Console entry point: expected errors become one line on stderr, exit code 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (OSError, ValueError, RuntimeError) as exc:
        if os.environ.get("VLSA_DEBUG"):
            raise
        click.echo(f"error: {one_line(exc)}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
