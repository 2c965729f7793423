"""`vlsa data ...`, `vlsa train`, `vlsa eval`, `vlsa finetune`, `vlsa fit-tower`: registered as vlsa.commands."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
import typing
from pathlib import Path

import click

from train.benchmarks import DEFAULT_SEEDS, PROTOCOLS
from train.datasets.cli import import_command
from vlsa.config import parse_override


@click.group()
def data() -> None:
    """Make and prepare data: synthetic clips, manifests, shards, public datasets."""


data.add_command(import_command)  # vlsa data import FORMAT: train/datasets/


@data.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Clips of --split to write.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train", show_default=True,
              help="Split of the --n clips; val and test clips get unique captions.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option("--fps", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=96, show_default=True,
              help="Frame side in pixels (even).")
@click.option("--test", "n_test", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write this many test clips with unique captions into the same manifest.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes rendering clips; the output does not depend on it [default: one per CPU, at most 8].")
def synth(out: Path, n: int, seed: int, split: str, seconds: float, fps: int, size: int, n_test: int,
          workers: int | None) -> None:
    """Write synthetic clips whose caption, picture and sound agree, and OUT/manifest.jsonl."""
    from tqdm import tqdm  # imported here so `vlsa --help` stays fast

    from synth import DISTINCT_CAPTIONS, WORKERS, generate, generate_splits

    settings = dict(seconds=seconds, fps=fps, size=size, workers=workers or WORKERS)
    start = time.perf_counter()
    with tqdm(total=n + n_test, unit="clip", desc="synth", file=sys.stderr) as bar:
        if n_test:
            manifest = generate_splits(out, n, n_test, seed, split=split, on_clip=bar.update, **settings)
        else:
            manifest = generate(out, n, seed, split=split, on_clip=bar.update, **settings)
    counts = f"{n} {split}" + (f" + {n_test} test" if n_test else "")
    click.echo(f"wrote {counts} clips ({DISTINCT_CAPTIONS} possible captions) to {manifest} "
               f"in {time.perf_counter() - start:.1f} s")


def _parse_sets(pairs: tuple[str, ...]) -> dict:
    """--set encoder.depth=2 --set loss.matching=none -> {"encoder.depth": 2, ...} (JSON values)."""
    try:
        return dict(parse_override(pair) for pair in pairs)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--set") from None


def _load_config_file(path: Path | None) -> dict:
    """A JSON or TOML file of TrainConfig fields, with model overrides under "model"."""
    if path is None:
        return {}
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        d = tomllib.loads(text)
    else:
        d = json.loads(text)
    overrides = _flatten(d.pop("model", {}))
    from train.state import TrainConfig

    unknown = set(d) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise click.BadParameter(f"unknown training field {sorted(unknown)[0]!r} in {path}", param_hint="--config")
    return {**d, "overrides": overrides}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_options(cls, special: dict[str, dict | None]):
    """Click options for the fields of dataclass `cls`, in field order: --field-name with the
    field's type, default, metadata["help"] and metadata["metavar"]; a `bool` field is a
    --name/--no-name switch, a `list` one may be repeated. `special` adds click settings to a
    field's option (a path or choice type, `required`), or None: no option for that field."""
    hints = typing.get_type_hints(cls)

    def option(f: dataclasses.Field):
        kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        kw = dict(help=f.metadata.get("help"), metavar=f.metadata.get("metavar"))
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        if kind is bool:
            flag = f"{flag}/--no-{flag[2:]}"
        elif kind is list:
            kw["multiple"] = True
        else:
            kw["type"] = kind
        return click.option(flag, f.name, **{**kw, **special.get(f.name, {})})

    def decorate(command):
        for f in reversed(dataclasses.fields(cls)):
            if f.name not in special or special[f.name] is not None:
                command = option(f)(command)
        return command

    return decorate


def _train_options(command):
    from train.state import COMPILE_MODES, TrainConfig
    from vlsa.config import PRESETS

    return config_options(TrainConfig, {
        "manifest": dict(required=True, type=click.Path(exists=True, path_type=Path)),
        "out": dict(type=click.Path(file_okay=False)),
        "preset": dict(type=click.Choice(list(PRESETS))),
        "overrides": None,  # --set, --config's [model] and the loss switches
        "init": dict(type=click.Path(exists=True, file_okay=False)),
        "map_teacher": dict(type=click.Path(exists=True, file_okay=False)),
        "init_clip": dict(type=click.Path(exists=True, dir_okay=False)),
        "compile": dict(type=click.Choice(COMPILE_MODES), is_flag=False, flag_value="blocks"),
    })(command)


def _given(flags: dict) -> dict:
    """The options the command line names: they override a --config file, which overrides the
    TrainConfig defaults that the other options hold."""
    ctx = click.get_current_context()
    return {k: v for k, v in flags.items() if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}


@click.command(context_settings={"show_default": True})
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON/TOML of training fields; model overrides under [model].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Model override, e.g. encoder.depth=2.")
@click.option("--no-masked-modelling", is_flag=True, help="Ablation: no local objective.")
@click.option("--matching", type=click.Choice(["audio", "video_text", "none"]), help="Global objective.")
@click.option("--no-matching-head", is_flag=True, help="Ablation: no binary matching head.")
@_train_options
def train(manifest, config_file, sets, no_masked_modelling, matching, no_matching_head, **flags) -> None:
    """Pre-train VLSA on a manifest's train split (CPU, one GPU, or torchrun for many)."""
    import logging

    from train.state import TrainConfig
    from train.trainer import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    fields = _load_config_file(config_file)
    overrides = {**fields.pop("overrides", {}), **_parse_sets(sets)}
    if no_masked_modelling:
        overrides["loss.masked_modelling"] = False
    if matching:
        overrides["loss.matching"] = matching
    if no_matching_head:
        overrides["loss.matching_head"] = False
    fields.update(_given(flags))
    if fields.get("init_fresh") and not fields.get("init"):
        raise click.BadParameter("needs --init", param_hint="--init-fresh")
    fields["init_fresh"] = list(fields.get("init_fresh", []))
    tc = TrainConfig(manifest=str(manifest), overrides=overrides, **{k: v for k, v in fields.items() if k != "manifest"})
    result = run_training(tc)
    if "eval" in result:
        from train.evaluate import format_table

        click.echo(format_table(result["eval"]))
    skipped = sum(result["skipped"].values())
    click.echo(f"stopped ({result['stopped_by']}) at step {result['step']}; checkpoint {tc.out}/checkpoint; "
               f"{skipped} samples skipped" + (f": {result['skipped']}" if skipped else ""))
    _exit_if_terminated(result)


def _exit_if_terminated(result: dict) -> None:
    """A run stopped by SIGTERM has saved its checkpoint; it still exits 128 + 15, as a process
    killed by the signal would, so a scheduler knows it did not finish."""
    if result["stopped_by"] == "SIGTERM":
        sys.exit(128 + signal.SIGTERM)


@click.command("eval")
@click.option("--checkpoint", required=True, type=click.Path(file_okay=False))
@click.option("--manifest", required=True, type=click.Path(exists=True, path_type=Path),
              help="A manifest (.jsonl) or a shard folder.")
@click.option("--split", default="test", show_default=True)
@click.option("--group", default=None, help="Only the manifest's rows with this \"group\" (e.g. the corpus's "
              "heldout-package, heldout-concept, speech-heldout-voice).")
@click.option("--seeds", type=click.IntRange(min=1), help="Average over this many random frame samplings "
              "[default: 1; 3 with --protocol, as the paper].")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), help="Score as this benchmark does (several "
              "captions a clip, mean and spread over --seeds) beside the paper's numbers; needs a manifest.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--workers", default=0, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--json", "as_json", is_flag=True)
def eval_command(checkpoint, manifest, split, group, seeds, protocol, batch_size, workers, device, as_json) -> None:
    """Retrieval R@1/5/10/50, median and mean rank in six directions on a manifest split, or a
    benchmark's protocol (--protocol)."""
    import torch

    from train.evaluate import evaluate, format_table
    from vlsa import VLSA

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = VLSA.from_pretrained(checkpoint, map_location=device)
    if protocol:
        _eval_protocol(model, checkpoint, manifest, protocol, split, group, seeds or DEFAULT_SEEDS, batch_size,
                       workers, as_json)
        return
    seeds = seeds or 1
    results = evaluate(model, manifest, split, batch_size=batch_size, workers=workers, seeds=seeds, group=group)
    if as_json:
        click.echo(json.dumps({"checkpoint": str(checkpoint), "split": split, "group": group, "seeds": seeds,
                               "results": results}, indent=2))
    else:
        n = int(next(iter(results.values()))["N"]) if results else 0
        where = f"{split}, group {group}" if group else split
        click.echo(f"{checkpoint} on {manifest} [{where}], {n} clips, {seeds} seed(s)")
        click.echo(format_table(results))


def _eval_protocol(model, checkpoint, manifest, protocol, split, group, seeds, batch_size, workers, as_json) -> None:
    from train.benchmarks import format_protocol_table
    from train.protocols import evaluate_protocol

    result = evaluate_protocol(model, manifest, protocol, split, group, seeds, batch_size, workers)
    if as_json:
        click.echo(json.dumps({"checkpoint": str(checkpoint), **result}, indent=2))
        return
    where = f"{split}, group {group}" if group else split
    lost = result["clips"] - result["decoded"]
    failed = f" ({lost} did not decode)" if lost else ""
    click.echo(f"{protocol}: {PROTOCOLS[protocol].about}\n{checkpoint} on {manifest} [{where}], "
               f"{result['clips']} clips{failed}, {result['captions']} captions, {seeds} seed(s)")
    click.echo(format_protocol_table(result))


@click.command("calibrate")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A manifest (.jsonl) whose split the checkpoint never trained on.")
@click.option("--split", default="test", show_default=True)
@click.option("--group", default=None, help="Only the manifest's rows with this \"group\".")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write calibration.json in [default: the checkpoint's].")
@click.option("--note", default=None, help="A line kept in the file about the data (how it was made).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--workers", default=0, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate_command(checkpoint, manifest, split, group, out, note, batch_size, workers, device, as_json) -> None:
    """Measure what the checkpoint's scores mean on held-out pairs, for each kind of search, and
    write CHECKPOINT/calibration.json: the strength words of `vlsa search` and the app."""
    import torch

    from train.calibrate import calibrate, format_calibration
    from vlsa import VLSA

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = VLSA.from_pretrained(checkpoint, map_location=device)
    calibration, left_out = calibrate(model, manifest, split, group, batch_size, workers)
    if note:
        calibration.made_on["note"] = note
    path = calibration.save(out or checkpoint)
    for reason in left_out:
        click.echo(f"left out: {reason}", err=True)
    if as_json:
        click.echo(json.dumps(calibration.to_dict(), indent=2))
    else:
        made = calibration.made_on
        click.echo(f"{checkpoint} on {manifest} [{split}{f', group {group}' if group else ''}], "
                   f"{made['decoded']} of {made['rows']} rows decoded")
        click.echo(format_calibration(calibration))
    click.echo(f"wrote {path}", err=True)


@data.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--preset", default="tiny", show_default=True, help="Decode at this preset's sizes.")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False), help="...or at a checkpoint's.")
@click.option("--per-shard", default=1000, show_default=True, help="Samples per tar file.")
def shard(manifest: Path, out: Path, preset: str, checkpoint: str | None, per_shard: int) -> None:
    """Decode MANIFEST once into tar shards (JPEG frames, PCM audio, captions) under OUT."""
    from tqdm import tqdm

    from train.data import read_manifest
    from train.shards import write_shards
    from vlsa.checkpoint import load_config
    from vlsa.config import preset_config

    config = load_config(checkpoint) if checkpoint else preset_config(preset)
    with tqdm(total=len(read_manifest(manifest)), unit="clip", desc="shard", file=sys.stderr) as bar:
        index = write_shards(manifest, out, config, per_shard=per_shard, on_row=lambda: bar.update(1))
    skipped = sum(index["skipped"].values())
    click.echo(f"wrote {len(index['samples'])} samples to {out}" +
               (f"; skipped {skipped}: {index['skipped']}" if skipped else ""))


@data.command("corpus")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vlsa" / "corpus-debs",
              show_default="${XDG_CACHE_HOME:-~/.cache}/vlsa/corpus-debs", help="Downloaded and extracted packages.")
@click.option("--shared-media", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also take the labelled sounds of this folder (sounds/labels.jsonl); all held out for test.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--offline", is_flag=True, help="Use only packages already extracted in --cache.")
@click.option("--workers", type=click.IntRange(min=1), default=min(os.cpu_count() or 1, 8), show_default=True,
              help="Processes rendering rows; the output does not depend on it.")
@click.option("--holdout", type=click.Choice(["packages", "none"]), default="packages", show_default=True,
              help="packages: hold out whole packages, concepts and voices to measure on (development); "
                   "none: train on everything permitted but the demo's own held-out recordings (the shipped checkpoint).")
@click.option("--held-out-package", "held_out", multiple=True, metavar="NAME",
              help="Hold out these sources (repeatable): with --holdout packages instead of the default "
                   "(supertuxkart-data, shared-media); with --holdout none beside the demo's recordings.")
@click.option("--only", multiple=True, metavar="SOURCE",
              help="Build only these sources (repeatable: a package, espeak-ng, shared-media); default all.")
def corpus(out: Path, cache: Path, shared_media: Path | None, seed: int, offline: bool, workers: int,
           holdout: str, held_out: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Build the real-media corpus (Debian packages + --shared-media) into OUT/manifest.jsonl."""
    from tqdm import tqdm

    from train.corpus.build import build, plan_corpus
    from train.corpus.split import Holdout

    start = time.perf_counter()
    with tqdm(desc="fetch", unit="pkg", file=sys.stderr) as bar:
        plan = plan_corpus(cache, shared_media, seed=seed, offline=offline,
                           on_package=lambda name: (bar.set_postfix_str(name), bar.update(1)),
                           holdout=Holdout.of(holdout, held_out), only=frozenset(only) or None)
    with tqdm(total=len(plan.jobs), desc="render", unit="row", file=sys.stderr) as bar:
        summary = build(out, plan, workers=workers, on_row=lambda: bar.update(1))

    def counts(c) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

    click.echo(f"wrote {summary['rows']} rows to {out / 'manifest.jsonl'} in {time.perf_counter() - start:.0f} s; "
               f"kinds: {counts(summary['kinds'])}; splits: {counts(summary['splits'])}; "
               f"test groups: {counts(summary['groups'])}; skipped: {counts(summary['skipped'])}")


@data.command("demo-media")
@click.argument("corpus", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=lambda: Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vlsa" / "corpus-debs",
              show_default="${XDG_CACHE_HOME:-~/.cache}/vlsa/corpus-debs",
              help="The packages `vlsa data corpus` extracted: each clip's reviewed picture is read from them.")
def demo_media(corpus: Path, out: Path, cache: Path) -> None:
    """Copy the demo's held-out real media from a built CORPUS into OUT (replaced), credited, each
    clip drawn again with its reviewed picture (train/corpus/demo_media.py, PICTURES)."""
    from train.corpus.demo_media import draw_pictures, write_demo_media

    write_demo_media(corpus, out)
    rows = draw_pictures(out, cache / "root")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    click.echo(f"wrote {len(rows)} files ({size / 1e6:.1f} MB) with manifest.jsonl and CREDITS.md to {out}")


@data.command("merge")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def merge(out: Path, manifests: tuple[Path, ...]) -> None:
    """One manifest OUT from several (e.g. the corpus and the synthetic set), paths made absolute."""
    from train.datasets.common import write_manifest
    from train.manifest import merge_manifests

    rows, skipped = merge_manifests(list(manifests))
    write_manifest(rows, out)
    click.echo(f"wrote {len(rows)} rows from {len(manifests)} manifests to {out}"
               + (f"; skipped {skipped} bad rows" if skipped else ""))


@data.command("manifest")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: FOLDER/manifest.jsonl.")
@click.option("--test-fraction", default=0.0, show_default=True, help="Share of clips put in the test split.")
@click.option("--seed", default=0, show_default=True)
def manifest_command(folder: Path, out: Path | None, test_fraction: float, seed: int) -> None:
    """A manifest from FOLDER's media with sidecar captions (NAME.txt, NAME.srt or NAME.vtt)."""
    from train.manifest import build_manifest

    rows = build_manifest(folder, test_fraction=test_fraction, seed=seed)
    out = out or folder / "manifest.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    captioned = sum(1 for r in rows if r.get("text"))
    click.echo(f"wrote {len(rows)} rows ({captioned} with captions) to {out}")


@click.command(context_settings={"show_default": True})
@click.option("--checkpoint", required=True, type=click.Path(exists=True, file_okay=False),
              help="Pre-trained weights to start from.")
@click.option("--manifest", required=True, type=click.Path(exists=True, path_type=Path),
              help="Paired video + caption manifest (or shard folder); its train split is used.")
@click.option("--out", default="runs/finetune", type=click.Path(file_okay=False))
@click.option("--epochs", default=20, help="The paper fine-tunes for 20 epochs.")
@click.option("--batch-size", default=256, help="The paper's; lower it on small machines.")
@click.option("--lr", default=1e-5)
@click.option("--warmup", default=100)
@click.option("--workers", default=2)
@click.option("--seed", default=0)
@click.option("--device", default=None)
@click.option("--eval-split", default="test", help="Evaluate on this split at the end ('' for none).")
@click.option("--max-minutes", type=float)
@click.option("--resume", is_flag=True)
@click.option("--no-progress", is_flag=True)
def finetune(checkpoint, manifest, out, epochs, batch_size, lr, warmup, workers, seed, device, eval_split,
             max_minutes, resume, no_progress) -> None:
    """Retrieval fine-tuning: video<->text InfoNCE from a pre-trained checkpoint (MSR-VTT style)."""
    import logging

    from train.state import TrainConfig
    from train.trainer import train as run_training
    from train.trainer import training_dataset
    from vlsa.checkpoint import load_config

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    n = len(training_dataset(str(manifest), load_config(checkpoint), seed))
    steps = max(1, epochs * n // batch_size)
    tc = TrainConfig(manifest=str(manifest), out=out, init=checkpoint, batch_size=batch_size, steps=steps,
                     lr=lr, warmup=min(warmup, steps // 10 + 1), workers=workers, seed=seed, device=device,
                     eval_split=eval_split or None, max_minutes=max_minutes, resume=resume,
                     progress=not no_progress, ckpt_every=max(1, steps // 4),
                     overrides={"loss.masked_modelling": False, "loss.matching": "video_text",
                                "loss.matching_head": False})
    result = run_training(tc)
    if "eval" in result:
        from train.evaluate import format_table

        click.echo(format_table(result["eval"]))
    click.echo(f"fine-tuned {result['step']} steps ({epochs} epochs of {n} clips); checkpoint {out}/checkpoint")
    _exit_if_terminated(result)


@click.command("fit-tower")
@click.option("--init", "init", required=True, type=click.Path(exists=True, file_okay=False),
              help="The trained checkpoint whose joint space the tower is fitted into.")
@click.option("--manifest", required=True, type=click.Path(exists=True, path_type=Path),
              help="Its train split is fitted on, its test split evaluated.")
@click.option("--tower", default="aisfx", show_default=True,
              help="The pretrained audio tower, when --init has none (vlsa/audio_tower.py).")
@click.option("--out", default="runs/fit-tower", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=256, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True)
@click.option("--video-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the sound<->picture term.")
@click.option("--text/--no-text", default=True, show_default=True,
              help="Also fit the text tower's adapter (on words<->sounds and words<->pictures).")
@click.option("--anchor", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Weight of holding the words of pictures where --init had them (its picture maps).")
@click.option("--residual/--no-residual", default=None,
              help="The tower adds to --init's own pooled audio rather than replacing it (audio.tower_residual) "
                   "[default: residual; an --init with a tower keeps its own].")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Decoding processes while computing features.")
@click.option("--eval-split", default="test", show_default=True, help="Evaluate on this split at the end ('' for none).")
def fit_tower(init, manifest, tower, out, epochs, batch_size, lr, temperature, video_weight, text, anchor, residual,
              seed, workers, eval_split) -> None:
    """Fit a pretrained audio tower (and the text tower's adapter) into a trained checkpoint, the rest frozen."""
    import torch
    from tqdm import tqdm

    from train.data import manifest_identity, read_manifest
    from train.tower_fit import FitSettings, fit_towers, row_features
    from vlsa.api import VLSA
    from vlsa.checkpoint import fingerprint, load_config, load_into, load_weights
    from vlsa.config import apply_overrides

    config = load_config(init)
    if config.audio.tower == "shared":
        config = apply_overrides(config, {"audio.tower": tower, "audio.tower_residual": residual is not False})
    elif residual is not None and residual != config.audio.tower_residual:
        raise click.UsageError(f"--init already hears through audio.tower={config.audio.tower} with "
                               f"audio.tower_residual={str(config.audio.tower_residual).lower()}; "
                               f"--{'' if residual else 'no-'}residual cannot change it")
    fresh = () if any(k.startswith("audio_adapter.") for k in load_weights(init)) else ("audio_adapter",)
    torch.manual_seed(seed)  # the fresh adapter's initialisation
    model = load_into(VLSA(config), init, fresh).eval()
    rows = read_manifest(manifest, "train")
    with tqdm(desc="features", unit="chunk", file=sys.stderr) as bar:
        feats = row_features(model, fingerprint(init), rows, out / "features", workers,
                             on_chunk=lambda done, total: (setattr(bar, "total", total), bar.update(1)))
    settings = FitSettings(epochs=epochs, batch_size=batch_size, lr=lr, temperature=temperature,
                           video_weight=video_weight, text=text, anchor=anchor, seed=seed)
    with tqdm(total=epochs, desc="fit", unit="epoch", file=sys.stderr) as bar:
        fit_towers(model, rows, feats, settings,
                       on_epoch=lambda epoch, loss: (bar.set_postfix(loss=f"{loss:.3f}"), bar.update(1)))
    saved = model.save_pretrained(out / "checkpoint", extra={"fit_tower": {
        "init": fingerprint(init), **manifest_identity(manifest), "rows": len(rows),
        "sounds": int(feats.has_audio.sum()), **dataclasses.asdict(settings)}})
    if eval_split:
        from train.evaluate import evaluate, format_table

        click.echo(format_table(evaluate(model, str(manifest), eval_split, workers=workers)))
    click.echo(f"fitted {config.audio.tower} on {int(feats.has_audio.sum())} sounds for {epochs} epochs; checkpoint {saved}")

