"""`vlsa data corpus OUT`: the real-media corpus, planned, rendered and written as a manifest.

Planning lists every row to make from the packages in a fixed order (sorted file walks, one seeded
generator); rendering turns each planned row into a file under OUT (in worker processes, each row
from its own seed, in plan order), so two builds give the same manifest. A file already in OUT
is kept, so a killed build resumes.

Rows: {"audio" | "video", "text", "captions"?, "source", "licence", "kind", "split", "group"?, "origin"?}
(audio-only rows carry no "video"; picture rows have no sound track). "captions" holds other ways
to say a sound's caption, `text` first (captions.phrasings); training draws one of them per load
(train/data.py), evaluation reads `text`.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.corpus import clips, instruments, pictures, speech, split
from train.corpus.captions import phrasings
from train.corpus.fetch import (
    FetchError,
    Package,
    fetch,
    file_licences,
    library_path,
    licence,
    missing_dependencies,
)
from train.corpus.sources import (
    CLIPART,
    EMOJI,
    EMOJI_FONT,
    GCOMPRIS_PHOTOS_PACKAGE,
    MORE_PACKAGES,
    PACKAGE_LICENCES,
    SHARED_MEDIA,
    SHARED_MEDIA_LICENCES,
    SOUND_PACKAGES,
    SOUNDFONT,
    SOUNDFONT_FILE,
    WIDER_PACKAGES,
    Item,
    SkipCounter,
    shared_media_items,
    sound_items,
)
from vlsa.durable import replace_durably

MAX_SECONDS = 3.0  # a sound is cut to this from its onset: the tiny preset hears 2 s, small 5 s
READ_SECONDS = 20.0  # at most this much of a file is decoded to find its onset
ONSET_DB = -40.0  # the onset is the first sample within this of the peak
PICTURE_SECONDS = 2.0
CLIPART_LIMIT = 1500  # clip art drawn (seeded) from the named folders; emoji are all taken
NOISE_SNR_DB = (5.0, 15.0)
MIXES = 600  # rows of two sounds at once
# Caption words too general to pair a sound with a picture.
GENERIC = {"a", "an", "the", "of", "on", "in", "and", "sound", "plays", "says", "voice", "man", "woman",
           "note", "long", "low", "high", "middle", "slow", "fast", "melody", "chord", "major", "minor",
           "short", "repeated", "notes", "hit", "roll", "someone", "with", "at", "is", "it", "by", "for"}


@dataclass
class Job:
    """One row to render: `make(out_path, rng)` writes the file; the rest is the manifest row."""

    rel: str  # the file under OUT
    row: dict
    make: Callable
    seed: tuple[int, ...]


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    skipped: SkipCounter = field(default_factory=SkipCounter)
    licences: dict[str, str] = field(default_factory=dict)
    holdout: split.Holdout = split.DEVELOPMENT
    only: frozenset[str] | None = None  # build only these sources (packages, shared-media); None: all

    def wants(self, name: str) -> bool:
        return self.only is None or name in self.only


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "x"


def _seed(seed: int, key: str) -> tuple[int, ...]:
    return (seed, zlib.crc32(key.encode()))


# --- sounds --------------------------------------------------------------------------------------


def prepared(path: Path) -> np.ndarray:
    """The sound of `path` at 16 kHz mono from its onset, at most MAX_SECONDS, peak 0.8;
    raises ValueError("silent") for a file with nothing above -80 dBFS."""
    from vlsa.media import read_audio

    wave = read_audio(path, 0.0, READ_SECONDS, clips.RATE).numpy()
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if peak < 1e-4:
        raise ValueError("silent")
    loud = np.flatnonzero(np.abs(wave) >= peak * 10 ** (ONSET_DB / 20))
    wave = wave[loud[0]: loud[-1] + 1][: round(MAX_SECONDS * clips.RATE)]
    return (wave * (0.8 / peak)).astype(np.float32)


def _write_sound(out: Path, rng, path: Path, noise: bool = False) -> None:
    wave = prepared(path)
    if noise:
        wave = clips.with_noise(wave, rng, float(rng.uniform(*NOISE_SNR_DB)))
    clips.write_mp4(out, None, clips.FPS, wave, clips.RATE)


def _write_mix(out: Path, rng, a: Path, b: Path) -> None:
    clips.write_mp4(out, None, clips.FPS, clips.mix(prepared(a), prepared(b)), clips.RATE)


def _write_render(out: Path, rng, font_path: str, item: instruments.Render) -> None:
    wave = instruments.render(_font(font_path), item, clips.RATE, 2.5)
    clips.write_mp4(out, None, clips.FPS, wave, clips.RATE)


def _write_speech(out: Path, rng, roots: dict, libs: str, u: speech.Utterance) -> None:
    wave, _ = speech.Espeak(roots, libs).say(u)
    peak = float(np.abs(wave).max()) or 1.0
    loud = np.flatnonzero(np.abs(wave) >= peak * 10 ** (ONSET_DB / 20))
    wave = wave[loud[0]: loud[-1] + 1][: round(MAX_SECONDS * clips.RATE)] * (0.8 / peak)
    clips.write_mp4(out, None, clips.FPS, wave.astype(np.float32), clips.RATE)


@functools.lru_cache(maxsize=1)
def _font(path: str) -> instruments.SoundFont:
    return instruments.SoundFont(path)


# --- pictures and clips --------------------------------------------------------------------------


def _picture(spec: tuple[str, str, str]):
    kind, root, key = spec
    if kind == "emoji":
        return pictures.render_emoji(Path(root), key)
    if kind == "photo":
        return pictures.load_picture(Path(root) / key, clips.SIZE)
    return pictures.load_clipart(Path(root), key, clips.SIZE)


def _write_picture(out: Path, rng, spec) -> None:
    image = _picture(spec)
    if image is None:
        raise ValueError("no picture for this emoji")
    clips.write_clip(out, image, None, PICTURE_SECONDS, rng)


def _write_pair(out: Path, rng, spec, sound: Callable[[], np.ndarray], noise: bool) -> None:
    """A picture moving while a sound of the same concept plays."""
    image = _picture(spec)
    if image is None:
        raise ValueError("no picture for this emoji")
    wave = sound()
    if noise:
        wave = clips.with_noise(wave, rng, float(rng.uniform(*NOISE_SNR_DB)))
    clips.write_clip(out, image, wave, max(PICTURE_SECONDS, len(wave) / clips.RATE), rng)


def _render_wave(font_path: str, item: instruments.Render) -> np.ndarray:
    return instruments.render(_font(font_path), item, clips.RATE, 2.5)


# --- planning ------------------------------------------------------------------------------------


def _get(package: Package, cache: Path, offline: bool, plan: Plan) -> Path | None:
    """The package's extracted root, or None (counted) when it cannot be had."""
    try:
        if offline:
            root = cache / "root" / package.name
            if not (root / ".extracted").is_file():
                raise FetchError(f"{package.name}: not in the cache (offline)")
        else:
            root = fetch(package, cache)
    except FetchError as e:
        plan.skipped.skip(f"package unavailable: {package.name}")
        print(f"skipping {e}", flush=True)
        return None
    plan.licences[package.name] = PACKAGE_LICENCES.get(package.name) or licence(root, package.name)
    return root


REPHRASED = {"sound", "sound-noise", "instrument", "clip"}  # kinds whose rows carry several phrasings


def _row(plan: Plan, kind: str, source: str, licence_: str, caption: str, captions: list[str] | None = None,
         held_out_voice: bool = False, **extra) -> dict:
    """A manifest row; `captions` are the captions that decide its split (a mix's two, a clip's
    sound and picture), the row's own phrasings are added for the REPHRASED kinds."""
    said = phrasings(caption) if kind in REPHRASED else [caption]
    sp, group = split.assign(source, (captions or [caption]) + said[1:], held_out_voice, plan.holdout)
    return {"text": caption, **({"captions": said} if len(said) > 1 else {}), "kind": kind, "source": source,
            "licence": licence_, "split": sp, **({"group": group} if group else {}), **extra}


def plan_corpus(cache: Path, shared_media: Path | None, seed: int = 0, offline: bool = False,
                on_package: Callable[[str], object] | None = None, holdout: split.Holdout = split.DEVELOPMENT,
                only: frozenset[str] | None = None) -> Plan:
    """Every row of the corpus, in a fixed order, without rendering anything; `only` names the
    sources to build (packages, "shared-media"), None all of them."""
    plan, rng = Plan(holdout=holdout, only=only), np.random.default_rng(seed)
    items: list[Item] = []
    for package in SOUND_PACKAGES:
        items += _package_sounds(plan, package, cache, offline, on_package)
    if shared_media is not None and plan.wants(SHARED_MEDIA):
        items += shared_media_items(shared_media, plan.skipped)
        for folder, lic in SHARED_MEDIA_LICENCES.items():
            plan.licences[f"{SHARED_MEDIA}/{folder}"] = lic
    for package in WIDER_PACKAGES + MORE_PACKAGES:
        items += _package_sounds(plan, package, cache, offline, on_package)
    sounds = []  # (caption, wave maker, split) for pairing with pictures
    for i, item in enumerate(items):
        lic = _licence_of(plan, item)
        row = _row(plan, item.kind, item.source, lic, item.caption, origin=item.origin)
        rel = f"{item.kind}/{_slug(item.source)}/{i:05d}_{_slug(item.caption)}.m4a"
        plan.jobs.append(Job(rel, {"audio": rel, **row}, functools.partial(_write_sound, path=item.path),
                             _seed(seed, rel)))
        if item.kind == "sound":
            sounds.append((item.caption, functools.partial(prepared, item.path), item, row))
    _plan_noise_and_mixes(plan, sounds, rng, seed)
    _plan_instruments(plan, cache, offline, rng, seed, sounds, on_package)
    _plan_speech(plan, cache, offline, rng, seed, on_package)
    _plan_pictures(plan, cache, offline, rng, seed, sounds, on_package)
    return plan


def _package_sounds(plan: Plan, package: Package, cache: Path, offline: bool, on_package) -> list[Item]:
    if not plan.wants(package.name):
        return []
    if on_package:
        on_package(package.name)
    root = _get(package, cache, offline, plan)
    return sound_items(package.name, root, plan.skipped) if root is not None else []


def _licence_of(plan: Plan, item: Item) -> str:
    if item.licence:
        return item.licence
    if item.source == SHARED_MEDIA:
        return SHARED_MEDIA_LICENCES[item.origin.split("/")[1]]
    return plan.licences[item.source]


def _plan_noise_and_mixes(plan: Plan, sounds: list, rng, seed: int) -> None:
    """Each sound again under noise (same caption), and MIXES pairs of sounds of one split."""
    for k, (caption, _, item, row) in enumerate(sounds):
        rel = f"noisy/{_slug(item.source)}/{k:05d}_{_slug(caption)}.m4a"
        plan.jobs.append(Job(rel, {"audio": rel, **row, "kind": "sound-noise"},
                             functools.partial(_write_sound, path=item.path, noise=True), _seed(seed, rel)))
    by_split: dict[str, list] = {}
    for s in sounds:
        by_split.setdefault(s[3]["split"], []).append(s)
    for sp, group in sorted(by_split.items()):
        count = MIXES if sp == "train" else MIXES // 10
        for k in range(min(count, len(group) // 2)):
            a, b = (group[int(j)] for j in rng.choice(len(group), 2, replace=False))
            if a[0] == b[0]:
                continue
            caption = f"{a[0]} and {b[0]}"
            rel = f"mixes/{sp}/{k:05d}_{_slug(caption)}.m4a"
            row = _row(plan, "sound-mix", a[2].source, _licence_of(plan, a[2]),
                       caption, [caption], also=b[2].source)
            if sp == "test":
                row["split"], row["group"] = "test", a[3].get("group", "heldout-package")
            plan.jobs.append(Job(rel, {"audio": rel, **row},
                                 functools.partial(_write_mix, a=a[2].path, b=b[2].path), _seed(seed, rel)))


def _plan_instruments(plan: Plan, cache: Path, offline: bool, rng, seed: int, sounds: list, on_package) -> None:
    if not plan.wants(SOUNDFONT.name):
        return
    if on_package:
        on_package(SOUNDFONT.name)
    root = _get(SOUNDFONT, cache, offline, plan)
    if root is None:
        return
    font_path = str(root / SOUNDFONT_FILE)
    lic = plan.licences[SOUNDFONT.name]
    for k, item in enumerate(instruments.instrument_renders(rng, set(_font(font_path).presets))):
        rel = f"instrument/{k:05d}_{_slug(item.caption)}.m4a"
        row = _row(plan, "instrument", SOUNDFONT.name, lic, item.caption, render=item.kind)
        plan.jobs.append(Job(rel, {"audio": rel, **row},
                             functools.partial(_write_render, font_path=font_path, item=item), _seed(seed, rel)))
        sounds.append((item.caption, functools.partial(_render_wave, font_path, item), None, row))


def _plan_speech(plan: Plan, cache: Path, offline: bool, rng, seed: int, on_package) -> None:
    if not plan.wants("espeak-ng"):
        return
    try:  # apt-cache reads the local package lists: offline too, espeak-ng needs its libraries
        names = missing_dependencies("espeak-ng")
    except FetchError as e:
        plan.skipped.skip("package unavailable: espeak-ng")
        print(f"skipping {e}", flush=True)
        return
    roots = {}
    for name in names:
        if on_package:
            on_package(name)
        root = _get(Package(name), cache, offline, plan)
        if root is None:
            return
        roots[name] = root
    libs = library_path(list(roots.values()))
    voice = speech.Espeak(roots, libs)
    lic = plan.licences["espeak-ng"]
    utterances = [(u, False) for u in speech.training_utterances(rng, voice.gender)]
    utterances += [(u, True) for u in speech.held_out_utterances()]
    utterances += [(u, False) for u in speech.drill_utterances(np.random.default_rng([seed, 36]))]
    for k, (u, held) in enumerate(utterances):
        rel = f"speech/espeak-ng/{k:05d}_{_slug(u.variant)}_{_slug(u.text)}.m4a"
        row = _row(plan, "speech", "espeak-ng", lic, u.caption, held_out_voice=held,
                   voice=f"{u.accent}+{u.variant}", speed=u.speed, pitch=u.pitch)
        plan.jobs.append(Job(rel, {"audio": rel, **row},
                             functools.partial(_write_speech, roots=roots, libs=libs, u=u), _seed(seed, rel)))


def _plan_pictures(plan: Plan, cache: Path, offline: bool, rng, seed: int, sounds: list, on_package) -> None:
    """A silent moving-picture row per picture, and a picture+sound clip per sound whose caption
    names a picture (the picture drawn at random among those that match)."""
    found: list[tuple[pictures.Picture, tuple]] = []
    for package, lister in ((EMOJI, None), (CLIPART, pictures.clipart_pictures)):
        if not plan.wants(package.name):
            continue
        if on_package:
            on_package(package.name)
        root = _get(package, cache, offline, plan)
        if root is None:
            continue
        if package is EMOJI:
            found += [(p, ("emoji", str(root / EMOJI_FONT), p.key)) for p in pictures.emoji_pictures()]
        else:
            art = lister(root)
            keep = sorted(rng.choice(len(art), min(CLIPART_LIMIT, len(art)), replace=False)) if art else []
            found += [(art[int(i)], ("clipart", str(root), art[int(i)].key)) for i in keep]
    photos = GCOMPRIS_PHOTOS_PACKAGE
    if plan.wants(photos) and photos in plan.licences:  # its sounds were planned: the package is extracted
        root = cache / "root" / photos
        licence_of = file_licences(root, photos)
        found += [(p, ("photo", str(root), p.key)) for p in pictures.gcompris_photos(root, licence_of)]
    by_word: dict[str, list[int]] = {}
    for i, (p, _) in enumerate(found):
        row = _row(plan, "picture", p.source, p.licence or plan.licences[p.source], p.caption)
        rel = f"picture/{_slug(p.source)}/{i:05d}_{_slug(p.name)}.mp4"
        plan.jobs.append(Job(rel, {"video": rel, **row}, functools.partial(_write_picture, spec=found[i][1]),
                             _seed(seed, rel)))
        for w in set(p.name.split()) - GENERIC:
            by_word.setdefault(w, []).append(i)
    for k, (caption, wave, _item, row) in enumerate(sounds):
        matches = sorted({i for w in caption.split() if w not in GENERIC for i in by_word.get(w, [])})
        own = [i for i in matches if found[i][0].source == row["source"]]
        matches = own or matches  # a package's own picture of the sound's animal first (gcompris' farm)
        if not matches:
            continue
        pic, spec = found[matches[int(rng.integers(len(matches)))]]
        noise = bool(rng.random() < 0.3)
        rel = f"clip/{k:05d}_{_slug(caption)}.mp4"
        both = _row(plan, "clip", row["source"], row["licence"], caption, [caption, pic.caption],
                    picture=pic.key, picture_source=pic.source, noise=noise,
                    **({"picture_licence": pic.licence} if pic.licence else {}))
        if row["split"] == "test":  # the sound's own held-out group wins over the picture's
            both["split"], both["group"] = "test", row.get("group")
        plan.jobs.append(Job(rel, {"video": rel, **both},
                             functools.partial(_write_pair, spec=spec, sound=wave, noise=noise), _seed(seed, rel)))


# --- rendering -----------------------------------------------------------------------------------


def _render(job: Job, out: Path) -> str | None:
    """Write the job's file unless it exists; None, or the reason it was skipped."""
    target = out / job.rel
    if target.is_file():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        job.make(partial, np.random.default_rng(list(job.seed)))
    except Exception as e:  # noqa: BLE001 - a bad file is a skipped row, never a failed build
        partial.unlink(missing_ok=True)
        from vlsa.media import MediaError

        return str(e).split(": ")[-1][:60] if isinstance(e, (MediaError, ValueError)) else type(e).__name__
    replace_durably(partial, target)  # a power cut leaves no empty file under the final name
    return None


def build(out: Path, plan: Plan, workers: int = 1, on_row: Callable[[], object] | None = None) -> dict:
    """Render every planned row into `out` and write out/manifest.jsonl; return a summary."""
    out.mkdir(parents=True, exist_ok=True)
    render = functools.partial(_render, out=out)
    rows, skipped = [], Counter(plan.skipped)
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(render, plan.jobs, 8) if pool else map(render, plan.jobs)
        for job, reason in zip(plan.jobs, results, strict=True):
            if reason is None:
                rows.append(job.row)
            else:
                skipped[f"render: {reason}"] += 1
            if on_row:
                on_row()
    finally:
        if pool:
            pool.close()
            pool.join()
    split.check_split(rows, plan.holdout)
    (out / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    (out / "licences.json").write_text(json.dumps(plan.licences, indent=1, sort_keys=True) + "\n")
    return {"rows": len(rows), "kinds": Counter(r["kind"] for r in rows),
            "splits": Counter(r["split"] for r in rows), "groups": Counter(r.get("group") for r in rows if r.get("group")),
            "skipped": skipped}
