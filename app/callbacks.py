"""The app's callbacks: plain functions of a Context and the inputs, returning the outputs.

ui.py wires them to events (each runs on the model thread via `ctx.run`); tests call them
directly. A mistake a user can make (an empty query, a bad upload, a file outside the library)
raises gr.Error, whose message gradio shows in the page and returns to API clients.

Search callbacks return SEARCH_OUTPUTS: (gallery, results, hits, query, status)
    gallery: [(picture file, caption)]   one per hit, best first
    results: [dict]                      the hits as JSON (what API clients read; see result_row)
    hits:    [Hit]                       kept in session state for `select_result`
    query:   {"video": (E,) or (N, E), ...}  the query each modality's heatmaps use (a sound's
                                         N windows: the row that found the result), by the
                                         modality of the vectors it is compared with (a tower
                                         checkpoint's sounds: also "audio_tower"), and under
                                         SEARCHED_BY {"video": "text", ...}: what each modality
                                         was searched with (the kind of search, for the words)
    status:  str                         Markdown: how many results, how long it took
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np

from app import clips, render
from app.context import Context
from app.files import FileRefused, check_upload, discard_upload, open_indexed
from app.thumbnails import Thumbnail
from catalog.paths import display_path
from catalog.service import KINDS, Hit
from catalog.store import WINDOW_MODALITIES, CatalogError, Media, NotFound
from vlsa.api import VLSA
from vlsa.calibration import EXACT, LEVELS, UNCALIBRATED, WEAK
from vlsa.media import MediaError, probe
from vlsa.vectors import TOWER_VECTORS

log = logging.getLogger(__name__)

# (label, value) pairs for the UI; the API takes the values.
KIND_CHOICES = [("video and sound", "any"), ("video", "video"), ("sound", "audio")]
DURATIONS: dict[str, tuple[float | None, float | None]] = {  # label -> (min, max) seconds of the file
    "any length": (None, None),
    "under 10 s": (None, 10.0),
    "10 s to 1 min": (10.0, 60.0),
    "1 to 10 min": (60.0, 600.0),
    "over 10 min": (600.0, None),
}
ALL_FOLDERS = "all folders"  # the folder filter's "no filter" (never an absolute path, so unambiguous)
SEARCH_OUTPUTS = ("gallery", "results", "hits", "query", "status")
MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER: no window id is above it
RESULT_GONE = "That result is no longer in the catalog (it was re-indexed); search again."
SHORT_SOUND = "short-sound"  # class of a player whose sound lasts under a second (see ui.CSS)
HOW_TO_READ = ("Best first. *Exact* is what you searched with itself; *strong*, *good*, *fair* or *weak* "
               "says how often a wrong result scores this high for this kind of search: at most 1 in 1,000, "
               "1 in 100, 1 in 20, or more often (measured on media the model never trained on). Each was "
               "found by its picture or by its sound; in *find similar* with both chosen under *Match "
               "against*, the best by picture and the best by sound take turns.")
UNCALIBRATED_NOTE = ("This model has no calibration (`vlsa calibrate` makes one), so results show their "
                     "cosine, not a strength word.")
SEARCHED_BY = "searched_by"  # the query state's key for what each modality was searched with


@contextlib.contextmanager
def user_errors(not_found: str = RESULT_GONE, file: str | None = None, name: str | None = None) -> Iterator[None]:
    """Errors the service raises for bad input become gr.Error, one line in the product's words:
    no catalog path, no SQLite or Python wording (anything else is logged, and the page shows
    gradio's plain "Error", see app/cli.py). `file`, the path being read (an upload in the app's
    temporary folder, an open file's pinned name), is shown as `name` (default: its own name)."""
    try:
        yield
    except NotFound as e:  # its text names the catalog file
        log.info("%s", e)
        raise gr.Error(not_found) from e
    except (CatalogError, MediaError, ValueError) as e:
        message = str(e).replace(file, name or os.path.basename(file)) if file else str(e)
        raise gr.Error(message) from e
    except OSError as e:  # a file moved or deleted since it was indexed
        shown = (name if file and e.filename == file and name else
                 os.path.basename(e.filename) if e.filename else "the file")
        raise gr.Error(f"Cannot read {shown}: {e.strerror or e}") from e


def search_options(kind: str, folder: str | None, duration: str, per_file: bool, top: int) -> dict:
    """The service's keyword arguments for the filters of the page (or of an API call)."""
    if kind not in KINDS:
        raise gr.Error(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if duration not in DURATIONS:
        raise gr.Error(f"duration must be one of: {', '.join(DURATIONS)}")
    low, high = DURATIONS[duration]
    folder = None if (folder or "").strip() in ("", ALL_FOLDERS) else folder.strip()
    return {"kind": kind, "folder": folder, "min_duration": low, "max_duration": high,
            "per_file": bool(per_file), "top": top}


# --- searches ----------------------------------------------------------------------------------


def search_text(ctx: Context, text: str, kind: str = "any", folder: str = ALL_FOLDERS,
                duration: str = "any length", per_file: bool = True) -> tuple:
    """Search by words. Returns SEARCH_OUTPUTS."""
    if not (text or "").strip():
        raise gr.Error("Type what you are looking for.")
    began = time.perf_counter()
    options = search_options(kind, folder, duration, per_file, ctx.top)
    with user_errors():
        vector = ctx.model.embed_text([text.strip()])[0].numpy()
        hits = ctx.service.search_vector(vector, **options)
    return results(ctx, hits, searched_with(vector, "text"), f"“{text.strip()}”", began)


def search_audio(ctx: Context, audio: str | None, kind: str = "any", folder: str = ALL_FOLDERS,
                 duration: str = "any length", per_file: bool = True) -> tuple:
    """Search by a sound: an uploaded file or a recording (a path). Returns SEARCH_OUTPUTS."""
    began = time.perf_counter()
    try:
        check_upload(audio, ctx.limits)
        options = search_options(kind, folder, duration, per_file, ctx.top)
        with user_errors(file=audio):  # its path is in the app's temporary folder: named by its own name only
            query = ctx.service.sound_query(audio)
            hits = ctx.service.search_vector(query, **options)
    finally:  # searched or refused, the app keeps no user's sound (app/files.py)
        discard_upload(audio, ctx.workdir)
    return results(ctx, hits, {**query, SEARCHED_BY: dict.fromkeys(query, "audio")},
                   f"the sound {Path(audio).name}", began)


def find_similar(ctx: Context, window_id: float | None, kind: str = "any", folder: str = ALL_FOLDERS,
                 duration: str = "any length", per_file: bool = True) -> tuple:
    """Search with a window of the catalog (a result's "find similar"). Returns SEARCH_OUTPUTS."""
    window = window_number(window_id)
    began = time.perf_counter()
    options = search_options(kind, folder, duration, per_file, ctx.top)
    catalog = ctx.service.catalog
    with user_errors(not_found="No such result in the catalog (it may have been re-indexed); search again, then pick a result."):
        hits = ctx.service.search_like(window, **options)
        vectors, sources = ctx.service.like_query(window)
        moment = catalog.window(window)
        name = os.path.basename(catalog.media_by_id(moment.media_id).display_path)
    query = {**vectors, SEARCHED_BY: sources}
    return results(ctx, hits, query, f"{name} at {moment.start:.1f}–{moment.end:.1f} s", began, "like")


def searched_with(vector: np.ndarray, modality: str) -> dict:
    """The query state of a search with one query (a text's vector, a sound's windows) for every
    modality: see SEARCH_OUTPUTS."""
    return {**{m: vector for m in WINDOW_MODALITIES}, SEARCHED_BY: {m: modality for m in WINDOW_MODALITIES}}


def window_number(window_id: float | None) -> int:
    """The window id a "find similar" names (the page's number field sends a float); gr.Error
    for anything that cannot be one, before it reaches SQLite."""
    if window_id is None:
        raise gr.Error("Select a result first, then ask for similar ones.")
    try:
        window = int(window_id)
    except (TypeError, ValueError, OverflowError):  # NaN, infinity, not a number
        window = 0
    if not 0 < window <= MAX_ROW_ID:
        raise gr.Error("No such result. Search again, then pick a result.")
    return window


def results(ctx: Context, hits: list[Hit], query: dict[str, np.ndarray], what: str, began: float,
            relation: str = "for") -> tuple:
    """SEARCH_OUTPUTS for a list of hits; the status says "N results {relation} {what}"."""
    ranked = [(rank, h, words(ctx, query, h)) for rank, h in enumerate(hits, 1)]
    gallery = list(zip(hit_thumbnails(ctx, hits), [caption(rank, h, w) for rank, h, w in ranked], strict=True))
    rows = [result_row(rank, h, w) for rank, h, w in ranked]
    took = time.perf_counter() - began
    how = HOW_TO_READ if ctx.service.calibration is not None else f"{HOW_TO_READ} {UNCALIBRATED_NOTE}"
    status = (f"**{len(hits)} results** {relation} {what} ({took:.2f} s). {how}" if hits else
              f"No results {relation} {what}. Try another filter, or index more of your library.")
    return gallery, rows, hits, query, status


def words(ctx: Context, query: dict, hit: Hit) -> str:
    """The hit's strength in words, by the checkpoint's calibration for this kind of search (what
    the hit's modality was searched with): needs the score alone (vlsa/calibration.py)."""
    return ctx.service.words(hit, query[SEARCHED_BY][hit.modality])


def search_kind(query: dict, hit: Hit) -> str:
    """The kind of search that found `hit`, as a calibration names it: "text->audio", ..."""
    return f"{query[SEARCHED_BY][hit.modality]}->{hit.modality}"


SEARCHED_WITH = {"text": "words", "audio": "a sound", "video": "a picture"}
AMONG = {"audio": "sounds", "video": "pictures", TOWER_VECTORS: "sounds (by the sound encoder's own vectors)"}
ONE_IN = {0.001: "1 time in 1,000", 0.01: "1 time in 100", 0.05: "1 time in 20"}


def meaning(ctx: Context, kind: str, match: str) -> str:
    """What a hit's words say, in a sentence: how often a wrong result (and a right one) reached
    the level, as measured by the checkpoint's calibration for this kind of search."""
    query, candidate = kind.split("->")
    search = f"a search with {SEARCHED_WITH[query]} among {AMONG[candidate]}"
    calibration = ctx.service.calibration
    if match == UNCALIBRATED or calibration is None:
        return f"this model has no calibration for {search} (`vlsa calibrate` makes one), so no words"
    if match == EXACT:
        return "what you searched with itself"
    if match == WEAK:
        return (f"in {search}, wrong results score this high more often than {ONE_IN[LEVELS[-1][1]]} "
                "on media the model never trained on")
    level = [w for w, _ in LEVELS].index(match)
    measured = calibration.kinds[kind]
    return (f"in {search}, a wrong result scores this high at most {ONE_IN[LEVELS[level][1]]} on media the "
            f"model never trained on, and {measured.true_share[level]:.0%} of right ones do")


def found_by(hit: Hit) -> str:
    """Which of the window's vectors matched, in words."""
    return "its picture" if hit.modality == "video" else "its sound"


def result_row(rank: int, hit: Hit, match: str) -> dict:
    """A hit as JSON for API clients: the raw cosine ("score") and its strength in words ("match",
    see words; "uncalibrated" for a checkpoint without a calibration). The path goes under "file":
    gradio_client takes any dict with a "path" key for a file to download."""
    row = hit.to_dict()
    return {"rank": rank, "file": row.pop("path"), "name": os.path.basename(hit.display_path), **row,
            "match": match}


def shown_words(hit: Hit, match: str) -> str:
    """The match words as the page shows them: the cosine where there are none."""
    return f"cosine {hit.score:.2f}" if match == UNCALIBRATED else match


def caption(rank: int, hit: Hit, match: str) -> str:
    """The lines under a result's picture: file name; rank, strength and time; what matched."""
    return (f"{os.path.basename(hit.display_path)}\n#{rank} · {shown_words(hit, match)} · "
            f"{hit.start:.1f}–{hit.end:.1f} s\nfound by {found_by(hit)}")


def hit_thumbnails(ctx: Context, hits: list[Hit]) -> list[str]:
    """A picture file for each hit: a frame for a video file, a small spectrogram for a sound; a
    blank tile for a file that cannot be read now (moved or changed since it was indexed): one
    such file must not cost the whole search its results."""
    wanted: list[Thumbnail | None] = []
    for hit in hits:
        try:
            media = ctx.service.catalog.media_by_id(hit.media_id)
        except CatalogError as e:
            log.warning("no thumbnail for %s: %s", hit.display_path, e)
            wanted.append(None)
            continue
        wanted.append(moment_thumbnail(ctx, media, hit.path, hit.start, hit.end))
    return ctx.thumbnails.get(wanted)


def moment_thumbnail(ctx: Context, media: Media, path: str, start: float, end: float) -> Thumbnail:
    """The picture of one moment of a file, keyed by the file's indexed version: a file replaced
    and indexed again is drawn anew."""
    return Thumbnail((path, media.size, media.mtime_ns, start, end),
                     partial(draw_moment, ctx.model, ctx.window, media, path, start, end), media.display_path)


def draw_moment(model: VLSA, window: float, media: Media, path: str, start: float, end: float) -> np.ndarray:
    """render.thumbnail of `path` if it is still `media` as indexed: opened, then checked against
    its catalog row, and read through that open file (app/files.py). Runs on a picture thread."""
    try:
        opened = open_indexed(path, media)
    except FileRefused as e:
        raise MediaError(str(e)) from None  # what Thumbnails logs and draws blank
    with opened:
        return render.thumbnail(model, window, opened.pinned, start, end, media.has_video, media.duration)


def draw_ahead(ctx: Context) -> int:
    """Have the picture of every moment made in the background, when the library is small enough
    for all of them to be kept (app/thumbnails.py): a search then shows moments that no search
    showed before without decoding them while the person waits. Returns how many were asked for."""
    catalog = ctx.service.catalog
    if ctx.service.stats()["windows"] > ctx.thumbnails.keep:
        return 0
    wanted = []
    for media in catalog.media(status="ok"):
        if not ctx.files.allows(media.path):  # not served (the search would not show it either)
            continue
        wanted += [moment_thumbnail(ctx, media, media.path, w.start, w.end) for w in catalog.windows(media.id)]
    ctx.thumbnails.ahead(wanted)
    return len(wanted)


# --- one result --------------------------------------------------------------------------------


def select_result(ctx: Context, hits: list[Hit] | None, query: dict | None, index: int | None) -> tuple:
    """Play a result from its start and draw its heatmaps.

    Returns (video, audio, spatial, temporal, spectrogram, details, window_id) as gr.update: the
    player that fits the file (the other hidden), each heatmap shown only where it applies (the
    picture's for a video, the sound's for a file with sound, the file's for a file of several
    windows), Markdown about the result, and its window id (for find_similar).
    """
    if not hits or query is None or index is None or not 0 <= int(index) < len(hits):
        raise gr.Error("That result is gone; search again.")
    hit = hits[int(index)]
    with ctx.files.open(hit.path) as opened, user_errors(file=opened.pinned, name=Path(hit.path).name):
        path = opened.pinned  # the file checked, whatever its name leads to now (app/files.py)
        media = ctx.service.catalog.media_by_id(hit.media_id)  # NotFound if re-indexed since
        match, kind = words(ctx, query, hit), search_kind(query, hit)
        query = ctx.service.query_of_hit({m: v for m, v in query.items() if m != SEARCHED_BY}, hit)  # a sound of several windows: the one that matched
        start, stop = clips.clip_span(hit.start, hit.end, media.duration)
        clip = str(clips.cut(path, probe(path), hit.start, hit.end, ctx.clip_dir, name=hit.path))
        data = render.window_data(ctx.model, ctx.window, path, hit.start, hit.end, media.has_video, media.has_audio)
        spatial = render.spatial(ctx.model, data, path, query["video"]) if media.has_video else None
        spectrogram = (render.spectrogram(ctx.model, data, query["audio"], ctx.window, media.duration)
                       if media.has_audio else None)
        temporal = render.temporal(ctx.service, hit.media_id, hit.modality, query[hit.modality],
                                   hit.window_id, media.duration)
    video = gr.update(value=clip if media.has_video else None, visible=media.has_video)
    audio = (sound_player(clip, stop - start, "Clip") if not media.has_video else
             gr.update(value=None, visible=False))
    images = [gr.update(value=image, visible=image is not None) for image in (spatial, temporal, spectrogram)]
    return (video, audio, *images, details(int(index) + 1, hit, match, meaning(ctx, kind, match), media.duration), hit.window_id)


def sound_player(path: str | None, seconds: float | None, label: str) -> dict:
    """gr.update of an audio player: its label says how long the sound lasts, and a sound under
    a second gets SHORT_SOUND, which hides the player's own times (gradio rounds them to whole
    seconds: 0:00 / 0:00)."""
    if path is None or seconds is None:
        return gr.update(value=path, visible=True, label=label, elem_classes=[])
    return gr.update(value=path, visible=True, label=f"{label} · {seconds:.1f} s",
                     elem_classes=[SHORT_SOUND] if seconds < 1.0 else [])


def describe_sound(audio: str | None) -> dict:
    """The query sound's player, its length in the label (set when a sound is uploaded or recorded)."""
    label = "A sound to match (upload or record)"
    try:
        seconds = probe(audio).duration if audio else None
    except MediaError:  # searching with it says what is wrong, in one line
        seconds = None
    update = sound_player(audio, seconds, label)
    update.pop("value")  # the player keeps its sound; only its label changes
    return update


def details(rank: int, hit: Hit, match: str, meaning: str, duration: float | None) -> str:
    """Markdown about one result, in words; `meaning`: what its match words say (see meaning)."""
    length = f" of a {duration:.1f} s file" if duration else ""
    return (f"### {os.path.basename(hit.display_path)}\n"
            f"**{hit.start:.1f}–{hit.end:.1f} s**{length} · result {rank} · **{shown_words(hit, match)}** "
            f"(cosine {hit.score:.3f}): {meaning}. Found by **{found_by(hit)}**: of this moment's picture and sound, "
            f"that is the closer one to what you searched for.\n\n`{hit.display_path}`")


# --- the library panel -------------------------------------------------------------------------


def library_panel(ctx: Context) -> tuple[str, list[list[str]]]:
    """(Markdown with counts, the checkpoint and the served folders; [[file, reason]] of failures)."""
    catalog = ctx.service.catalog
    stats, settings = ctx.service.stats(), catalog.settings
    seconds = stats["media_seconds"]
    lines = [f"**{stats['media_ok']} files** indexed, **{stats['media_failed']} failed** · "
             f"{stats['windows']} windows ({stats['video_vectors']} with a picture vector, "
             f"{stats['audio_vectors']} with a sound vector) · {human_duration(seconds)} of media"]
    if settings is not None:
        made = f"`{settings.checkpoint}`" if settings.checkpoint else f"an untrained `{settings.preset}` model"
        lines.append(f"**Checkpoint:** {made} (preset `{settings.preset}`, fingerprint "
                     f"`{settings.fingerprint}`) · windows of {settings.window:g} s every {settings.stride:g} s")
    lines.append(f"**Served to the browser:** these {stats['media_ok']} files, nothing else in their folders")
    failures = [[m.display_path, m.error or ""] for m in catalog.media(status="failed")]
    return "\n\n".join(lines), failures


def human_duration(seconds: float) -> str:
    """'42 s', '3.5 min' or '2.1 h'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def folder_choices(ctx: Context) -> list[tuple[str, str]]:
    """(label, value) of the folder filter: ALL_FOLDERS, then every folder holding indexed files."""
    folders = sorted({os.path.dirname(m.path) for m in ctx.service.catalog.media(status="ok")})
    return [(ALL_FOLDERS, ALL_FOLDERS)] + [(display_path(f), f) for f in folders]
