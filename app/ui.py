"""The page: `build_app(ctx)` lays out the components and wires the callbacks.

    demo = build_app(open_context("library.db"))
    demo.launch(server_name="127.0.0.1", **launch_options(...))   # see app/cli.py, app/server.py

Named API endpoints (gradio_client): /search_text (text, kind, folder, duration, per_file),
/search_audio (audio file, kind, folder, duration, per_file), /find_similar (window_id, kind,
folder, duration, per_file), each returning (gallery, results as JSON, status), and /library.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import gradio as gr

from app import callbacks
from app.callbacks import DURATIONS, KIND_CHOICES
from app.context import Context

log = logging.getLogger(__name__)
T = TypeVar("T")

# Queries that name media of the demo library: shipped real recordings (the default checkpoint finds
# them first; docs/REAL_MEDIA.md) and a synthetic clip's own caption.
EXAMPLES = (
    "someone plays the piano",
    "a glass breaks",
    "a voice says a letter",
    "a soft low whistle clicks at each bounce as a small red circle bounces",
)
# The query box's placeholder: a query the default checkpoint answers from the demo library (the
# spoken numbers shipped in vlsa/assets/media), as tests/test_demo.py checks; not one it cannot,
# such as "a dog barks" (docs/REAL_MEDIA.md, everyday queries).
PLACEHOLDER = "someone says a number"
MODEL = "model"  # the concurrency group of every event that runs the model or reads the catalog
# System fonts only: the default theme fetches Google fonts, and the app must work offline.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
CACHE_HOURLY = (3600, 3600)  # gradio deletes its cached files (images, cuts) an hour old, every hour
# Result captions under the picture, not over it (gradio draws them on the tile's lower part);
# a short sound's player hides its own times, which gradio rounds to 0:00 (callbacks.sound_player).
CSS = """
#results .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
#results .thumbnail-item > img { aspect-ratio: 1; height: auto; flex: none; }
#results .caption-label { position: static; max-width: none; border: none; border-radius: 0;
  background: none; padding: 4px 6px; white-space: pre-line; font-size: var(--text-md); line-height: 1.35;
  overflow: visible; text-overflow: clip; overflow-wrap: anywhere; }  /* a long name wraps, never cut */
#results .caption-label::first-line { font-weight: 600; }
#results .thumbnail-lg:hover .caption-label { opacity: 1; }
.short-sound #time, .short-sound #duration { display: none; }
.heatmap { padding-top: 2.4rem !important; }  /* the panel's label above the figure, not on it */
"""


class Handlers:
    """The event handlers: each runs one callback on the model thread with the app's context.

    Methods rather than the callbacks themselves, for their signatures: gradio names API
    parameters after them and passes gr.SelectData only to a parameter annotated with it.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn on the model thread. A gr.Error is the user's mistake, its message already shown in
        the page: the log gets one line, not gradio's traceback (kept for the project's own bugs)."""
        try:
            return self.ctx.run(fn, *args)
        except gr.Error as e:
            log.warning("%s: %s", fn.__name__, e.message)
            e.print_exception = False
            raise

    def search_text(self, text: str, kind: str, folder: str, duration: str, per_file: bool):
        return self.run(callbacks.search_text, text, kind, folder, duration, per_file)

    def search_audio(self, audio: str, kind: str, folder: str, duration: str, per_file: bool):
        return self.run(callbacks.search_audio, audio, kind, folder, duration, per_file)

    def find_similar(self, window_id: float, kind: str, folder: str, duration: str, per_file: bool):
        return self.run(callbacks.find_similar, window_id, kind, folder, duration, per_file)

    def describe_sound(self, audio: str | None):
        return callbacks.describe_sound(audio)

    def select(self, hits: list, query: dict, evt: gr.SelectData):
        return self.run(callbacks.select_result, hits, query, evt.index)

    def library(self):
        return self.run(callbacks.library_panel)

    def folders(self) -> list:
        return self.run(callbacks.folder_choices)


def in_browser(*updates: str, also: str = "") -> str:
    """An event's `js` returning these updates (JavaScript objects, one per output): the page
    applies them itself, with no request to the server. `also`: a statement run first."""
    return f"() => {{ {also}; return [{', '.join(updates)}]; }}"


UNSELECTED = "{__type__: 'update', selected_index: null}"  # the gallery, its value left as it is
HIDDEN = "{__type__: 'update', value: null, visible: false}"  # a player or heatmap
ENABLED = "{__type__: 'update', interactive: true}"  # a button
DISABLED = "{__type__: 'update', interactive: false}"
# After a selection: scroll the clip's player into view (below the results, it was under the fold
# at 1400x1000), its top near the window's top: a video grows once its metadata loads, so aligning
# its bottom would leave it cut. Gradio shows the player a frame or so after the answer: this waits.
SHOW_PLAYER = """(function show(frames) {
  const player = [...document.querySelectorAll('#player-video, #player-audio')].find(e => e.offsetParent);
  if (!player) { if (frames > 0) requestAnimationFrame(() => show(frames - 1)); return; }
  const top = player.getBoundingClientRect().top;
  if (top < 0 || top > innerHeight / 3) player.scrollIntoView({block: 'start'});
})(60)"""
NO_BUTTONS: list = []  # a heatmap without gradio's download, share and fullscreen buttons on its corner


@contextlib.contextmanager
def quiet_gradio6_notices() -> Iterator[None]:
    """Gradio 5.50 warns about every argument that 6.0 renames or moves (theme and css to
    launch(), api_name=False to api_visibility, its own Examples and Dataframe internals) but
    accepts none of the new forms, and 6 still takes the old ones (with a warning of its own): the
    page is written in the forms both accept, so the notices are noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Gradio 6.0")
        yield


# The pretrained models a checkpoint may use, credited as their licences ask (README, "What is here").
CREDITS = ("Words are read by the sentence encoder all-MiniLM-L6-v2 (sentence-transformers). A checkpoint with "
           "an audio tower hears sounds with the aisfx sound-effects encoder (\"Representation Learning "
           "for the Automatic Indexing of Sound Effects Libraries\", ISMIR 2022; CC BY 4.0).")


def build_app(ctx: Context, examples: Sequence[str] = EXAMPLES) -> gr.Blocks:
    """The search page for one catalog; queue included (one model call at a time)."""
    handlers = Handlers(ctx)
    with quiet_gradio6_notices(), gr.Blocks(title="VLSA search", theme=THEME, css=CSS, analytics_enabled=False,
                   delete_cache=CACHE_HOURLY) as demo:
        gr.Markdown("# VLSA search\nFind a moment in your videos and sounds by describing it, "
                    "by playing a sound like it, or from another result: pick a result to play it and to "
                    "see where in its picture and sound it matches.")
        hits, query = gr.State([]), gr.State(None)
        with gr.Tab("Search"):
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Tab("By words"):
                        text = gr.Textbox(label="Describe what you are looking for", elem_id="query-text",
                                          placeholder=PLACEHOLDER)
                        text_button = gr.Button("Search", variant="primary", elem_id="search-text")
                        gr.Examples([[e] for e in examples], inputs=[text], label="Examples")
                    with gr.Tab("By sound"):
                        sound = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                         label="A sound to match (upload or record)", elem_id="query-audio")
                        sound_button = gr.Button("Search by sound", variant="primary", elem_id="search-audio")
                with gr.Column(scale=2):
                    kind = gr.Radio(KIND_CHOICES, value="any", label="Match against",
                                    info="each moment of a file has a picture and a sound; search either or both")
                    folder = gr.Dropdown(handlers.folders(), value=callbacks.ALL_FOLDERS, label="Folder",
                                         allow_custom_value=True)
                    duration = gr.Dropdown(list(DURATIONS), value="any length", label="File length")
                    per_file = gr.Checkbox(True, label="Only the best moment of each file")
            status = gr.Markdown(label="Status", elem_id="status")
            # JPEG: gradio encodes each thumbnail anew for every search; its default, WebP, took
            # 2.5x as long (docs/PERFORMANCE.md, "The search app").
            gallery = gr.Gallery(label="Results", columns=6, height="auto", allow_preview=False,
                                 format="jpeg", elem_id="results")
            with gr.Row(elem_id="selection"):
                with gr.Column(scale=2):
                    video = gr.Video(label="Clip", autoplay=True, interactive=False, visible=False,
                                     elem_id="player-video")
                    audio = gr.Audio(label="Clip", autoplay=True, interactive=False, visible=False,
                                     elem_id="player-audio")
                    about = gr.Markdown(elem_id="details")
                    # Enabled by a selection (the page's own doing, below): pressed with nothing
                    # selected it could only answer with an error.
                    similar_button = gr.Button("Find similar", elem_id="find-similar", interactive=False)
                    gr.Markdown("*Find similar* searches with the selected moment itself: its picture, "
                                "its sound or both, as *Match against* says.", elem_classes=["hint"])
                    window_id = gr.Number(visible=False, precision=0)
                with gr.Column(scale=3):
                    spatial = gr.Image(label="Where in the picture: the frames of this moment", interactive=False,
                                       visible=False, buttons=NO_BUTTONS, elem_classes=["heatmap"], elem_id="heatmap-spatial")
                    temporal = gr.Image(label="When in the file: each moment, for this search", interactive=False,
                                        visible=False, buttons=NO_BUTTONS, elem_classes=["heatmap"], elem_id="heatmap-temporal")
                    spectrogram = gr.Image(label="Where in the sound: its spectrogram", interactive=False,
                                           visible=False, buttons=NO_BUTTONS, elem_classes=["heatmap"], elem_id="heatmap-audio")
            with gr.Accordion("Results as JSON", open=False):
                results = gr.JSON(label="Results (JSON)")
        with gr.Tab("Library"):
            library_text = gr.Markdown(label="Library", elem_id="library")
            failures = gr.Dataframe(headers=["file", "reason"], label="Files that could not be indexed",
                                    interactive=False)
            refresh = gr.Button("Refresh")
            gr.Markdown(CREDITS, elem_id="credits")

        # --- events ---
        filters = [kind, folder, duration, per_file]
        found = [gallery, results, hits, query, status]
        selection = [video, audio, spatial, temporal, spectrogram, about, window_id]
        searches = [
            gr.on([text_button.click, text.submit], handlers.search_text, [text, *filters], found,
                  api_name="search_text", concurrency_id=MODEL),
            sound_button.click(handlers.search_audio, [sound, *filters], found, api_name="search_audio",
                               concurrency_id=MODEL),
            similar_button.click(handlers.find_similar, [window_id, *filters], found,
                                 api_name="find_similar", concurrency_id=MODEL),
        ]
        heatmap_images = [spatial, temporal, spectrogram]
        # New results, nothing selected: the gallery keeps its selected index across values, and a
        # click on the tile at that index would then send no select event. Done in the page: a
        # request here raced the gallery's pictures for the server (docs/PERFORMANCE.md).
        for event in searches[:2]:  # the old selection belongs to the old results
            event.success(None, None, [gallery, *selection, similar_button], api_name=False,
                          js=in_browser(UNSELECTED, *[HIDDEN] * 5, "''", "null", DISABLED))
        # Find similar keeps the clip it started from; its heatmaps were drawn for the old search.
        searches[2].success(None, None, [gallery, *heatmap_images], api_name=False,
                            js=in_browser(UNSELECTED, *[HIDDEN] * 3))
        sound.change(handlers.describe_sound, sound, sound, api_name=False, queue=False)
        gallery.select(handlers.select, [hits, query], selection, api_name=False, concurrency_id=MODEL).success(
            None, None, [similar_button], api_name=False, js=in_browser(ENABLED, also=SHOW_PLAYER))
        demo.load(handlers.library, None, [library_text, failures], api_name="library", concurrency_id=MODEL)
        refresh.click(handlers.library, None, [library_text, failures], api_name=False, concurrency_id=MODEL)
    return demo.queue(default_concurrency_limit=1)
