"""`vlsa app`: open the search page for a catalog.

    vlsa app --db library.db                          # http://127.0.0.1:7860
    VLSA_APP_AUTH=me:secret vlsa app --db library.db --host 0.0.0.0 --port 8080 --no-browser

The app binds 127.0.0.1 unless --host says otherwise, never makes a share link, answers only the
host names it was started for, and serves only the catalog's media files and its own temporary
files (see app/files.py, app/server.py). Any other bind address needs a login. Its temporary
folder also holds gradio's cache (GRADIO_TEMP_DIR), so uploads, recordings and generated images
live there, not in a /tmp/gradio shared with other apps, and go when the app stops: on Ctrl-C
and on SIGTERM alike. Before it answers, the app runs one text and one sound search (`warm_up`),
so the first search from the page is as fast as later ones.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from app.files import GRADIO_CACHE, MAX_UPLOAD_BYTES, MAX_UPLOAD_SECONDS, UploadLimits
from app.gates import UPLOAD_QUOTA_BYTES
from app.server import (
    ANY_ADDRESS,
    AUTH_ENV,
    AUTH_HELP,
    is_loopback,
    launch_options,
    parse_login,
)
from catalog.lock import serving
from vlsa.errors import UserError

if TYPE_CHECKING:  # importing gradio reads its settings: only after make_workdir
    import gradio as gr

    from app.context import Context

log = logging.getLogger(__name__)
WARM_UP_TEXT = "a sound"  # any words: the warm-up search is for its side effects, not its results


def make_workdir() -> str:
    """The app's temporary folder, removed at exit; gradio's cache goes inside it."""
    workdir = tempfile.mkdtemp(prefix="vlsa-app-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    # Read when gradio builds the app, so set before build_app; examples cache likewise, else it
    # would be .gradio/ in whatever folder the command runs from.
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(workdir, GRADIO_CACHE)
    os.environ["GRADIO_EXAMPLES_CACHE"] = os.path.join(workdir, "examples")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: the app works offline
    # Gradio 6 records every call (the words, the uploaded sounds, the results) in the browser and
    # offers to copy that history to a Hugging Face bucket; a private library keeps none of it.
    os.environ["GRADIO_RUN_HISTORY"] = "False"
    return workdir


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a service manager) stops the app as Ctrl-C does: gradio closes the server
    on KeyboardInterrupt and the exit runs the atexit that removes the temporary folder, which
    holds the users' uploaded and recorded sounds. Python's default for SIGTERM skips atexit."""
    if threading.current_thread() is threading.main_thread():  # only there can a handler be set

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)


@click.command()
@click.option("--db", "db_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="The catalog file (built with `vlsa index`).")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=str),
              help="The checkpoint to embed queries with [default: the one the catalog records].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the library to your network and needs --auth.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@click.option("--auth", envvar=AUTH_ENV, show_envvar=True, metavar="USER:PASSWORD", help=AUTH_HELP)
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@click.option("--max-upload-mb", default=MAX_UPLOAD_BYTES / 2**20, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Largest query sound accepted.")
@click.option("--max-upload-seconds", default=MAX_UPLOAD_SECONDS, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Longest query sound accepted.")
@click.option("--upload-quota-mb", default=UPLOAD_QUOTA_BYTES / 2**20, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Most the uploads waiting to be searched may take at once; the oldest go first.")
def app(db_path: str, checkpoint: str | None, host: str, port: int, auth: str | None, no_browser: bool,
        max_upload_mb: float, max_upload_seconds: float, upload_quota_mb: float) -> None:
    """Search a catalog in the browser: by words, by a sound, or by example."""
    login = parse_login(host, auth)
    check_port(host, port)
    limits = UploadLimits(max_bytes=int(max_upload_mb * 2**20), max_seconds=max_upload_seconds,
                          quota_bytes=int(upload_quota_mb * 2**20))
    serve(db_path, checkpoint=checkpoint, host=host, port=port, no_browser=no_browser, limits=limits, login=login)


def check_port(host: str, port: int) -> None:
    """Raise a one-line error if `port` on `host` cannot be bound (another server has it), before
    the model loads, rather than gradio's error after it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"cannot serve on {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As uvicorn binds: SO_REUSEADDR, so a port left in TIME_WAIT by a previous run is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise UserError(f"port {port} on {host} is in use or not allowed ({e.strerror}); "
                                       "pass --port with another number") from None


def serve(db_path: str, checkpoint: str | None = None, host: str = "127.0.0.1", port: int = 7860,
          no_browser: bool = False, limits: UploadLimits | None = None, login: tuple[str, str] | None = None,
          who: str = "vlsa app") -> None:
    """Open the catalog and serve the search page until interrupted (what `vlsa app` and
    `vlsa demo` run). `login`: (user, password), required by parse_login beyond loopback.
    Holds the catalog's serving lock throughout (catalog/lock.py: a `vlsa demo` will not
    re-index it meanwhile; `vlsa index` may); `who` names this server to a refused one."""
    workdir = make_workdir()
    stop_on_sigterm()
    limits = limits or UploadLimits()
    with serving(db_path, who):
        ctx, demo = open_app(db_path, checkpoint=checkpoint, workdir=workdir, limits=limits)
        files = ctx.run(lambda c: c.service.stats()["media_ok"])
        click.echo(f"{db_path}: serving its {files} media files (nothing else in their folders) on "
                   f"{page_url(host, port)} to {audience(host, login)}", err=True)
        try:
            demo.launch(server_name=host, server_port=port, share=False, inbrowser=not no_browser,
                        max_file_size=limits.max_bytes, ssr_mode=False, quiet=True,
                        **launch_options(ctx.open_served, host, workdir, login, limits.quota_bytes))
        finally:
            ctx.close()


def open_app(db_path: str, checkpoint: str | None = None, workdir: str | None = None,
             limits: UploadLimits | None = None) -> tuple[Context, gr.Blocks]:
    """(context, page) for a catalog, its model loaded and warmed up: ready to launch."""
    from app.context import open_context  # after make_workdir: gradio reads its settings on import
    from app.ui import build_app

    ctx = open_context(db_path, checkpoint=checkpoint, workdir=workdir, limits=limits)
    warm_up(ctx)
    return ctx, build_app(ctx)


def warm_up(ctx: Context) -> None:
    """One text and one sound search through the callbacks, before the page is served: the first
    search of a process builds the tokenizer and the audio front end, loads the vectors into
    memory and runs each model path once, which the first person to search would otherwise wait
    for. A search error is logged, not raised: the same search from the page will say it. Then
    the pictures of a small library's moments start being made in the background (draw_ahead)."""
    import gradio as gr

    from app import callbacks
    from app.clips import write_wav

    rate = ctx.model.config.audio.sample_rate
    sound = Path(ctx.workdir) / "warm-up.wav"
    write_wav(0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate), rate, sound)  # 1 s of 440 Hz
    try:
        ctx.run(callbacks.search_text, WARM_UP_TEXT)
        ctx.run(callbacks.search_audio, str(sound))
    except gr.Error as e:
        log.warning("the warm-up search failed: %s", e)
    finally:
        sound.unlink(missing_ok=True)
    ctx.run(callbacks.draw_ahead)


def page_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ANY_ADDRESS else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def audience(host: str, login: tuple[str, str] | None) -> str:
    """Who can use the app, in words."""
    if is_loopback(host):
        return "this computer only" + (f", login required (user {login[0]})" if login else "")
    reach = "every network this computer is on" if host in ANY_ADDRESS else f"whoever can reach {host}"
    return f"{reach}, " + (f"login required (user {login[0]})" if login else "with no login")
