"""The app as an attacker or a careless user meets it (issue 15, items 1-4, 9 and 11).

`server` starts the real `vlsa app` (a subprocess, as conftest.running_app does) with a login, on
a library laid out to tempt it: hidden files and a note beside the media, a subfolder that is a
link to a folder outside, a link named like media that points at a secret, a file that failed to
index in a folder of its own, and /etc/hostname given to the indexer. A logged-in client then
tries every route that returns a file with traversal, encodings, links, hidden files and
neighbours; a foreign Host header; malformed POSTs. Every refusal is a 400/401/403/404, and no
response body holds a secret, a traceback or a path outside the catalogued media.

The catalog is made by an untrained `tiny` model: these tests ask what is served, not what ranks.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import VLSA_BIN, _wait_until_up, free_port, stop_process
from mediagen import make_audio, make_float_wav, make_video

SECRET = "s3cret-not-for-the-browser"  # the contents of every file the app must not serve
LOGIN = ("alice", "correct horse battery staple")
UPLOAD_QUOTA_MB = 1  # the test server's upload space (--upload-quota-mb)
ETC_HOSTNAME = Path("/etc/hostname")  # a file that is not media, given to the indexer by mistake


@dataclass
class Library:
    base: Path  # holds everything below (and nothing the app may serve but `media`)
    root: Path  # the library folder
    db: Path
    media: list[Path]  # what the catalog holds as indexed, as it records them
    secrets: list[Path]  # files that exist and must never be served


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    from catalog.indexer import Indexer
    from catalog.model import seeded_preset
    from catalog.store import Catalog

    base = tmp_path_factory.mktemp("security")
    root, outside, elsewhere = base / "library", base / "outside", base / "elsewhere"
    for folder in (root / "sub", root / ".ssh", outside, elsewhere):
        folder.mkdir(parents=True)
    media = [make_video(root / "a.mp4", 1.0), make_audio(root / "sub" / "b.wav", 1.0)]
    make_video(outside / "v.mp4", 1.0)
    (root / "linked").symlink_to(outside)  # a library subfolder that is a link to elsewhere
    media.append(root / "linked" / "v.mp4")
    # A catalogued name that is a link (to a sound outside), which the race test flips to a secret
    # of the same size and time; and a file the identity test replaces by such a link.
    (root / "flip.wav").symlink_to(make_audio(outside / "flip-media.wav", 0.5))
    media += [root / "flip.wav", make_audio(root / "replaced.wav", 0.5)]
    secrets = [root / ".env", root / ".ssh" / "id_rsa", root / "notes.txt", root / "sub" / "b.wav.txt",
               outside / "secret.txt", elsewhere / "secret.txt", base / "beside.txt"]
    for secret in secrets:
        secret.write_text(SECRET)
    (root / "escape.mp4").symlink_to(base / "beside.txt")  # named like media, points at a secret
    (elsewhere / "broken.mp4").write_text(SECRET)  # fails to index
    secrets += [root / "escape.mp4", elsewhere / "broken.mp4"]
    for media_file, twin in [(outside / "flip-media.wav", base / "flip-secret.txt"),
                             (root / "replaced.wav", base / "replaced-secret.txt")]:
        twin.write_text((SECRET * media_file.stat().st_size)[:media_file.stat().st_size])
        os.utime(twin, ns=(media_file.stat().st_atime_ns, media_file.stat().st_mtime_ns))
    secrets += [base / "flip-secret.txt", base / "replaced-secret.txt"]
    db = base / "library.db"
    roots = [str(root), str(elsewhere / "broken.mp4"), str(ETC_HOSTNAME)]
    with Catalog(db) as catalog:
        report = Indexer(catalog, seeded_preset("tiny")).run(roots)
    assert report.indexed == len(media) and len(report.failed) == 3, report.to_dict()
    return Library(base, root, db, media, secrets)


@dataclass
class Server:
    port: int
    proc: subprocess.Popen
    log: Path
    tmp: Path  # the app's TMPDIR: its temporary folder is made in here
    cookie: str  # of a logged-in session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(library, tmp_path_factory) -> Server:
    """`vlsa app` with a login, on 127.0.0.1; logged in once. Stopped by the SIGTERM test (the last
    in this file) or else after the module."""
    port, tmp = free_port(), tmp_path_factory.mktemp("app-tmp")
    log = tmp_path_factory.mktemp("app-log") / "app.log"
    env = {**os.environ, "TMPDIR": str(tmp), "VLSA_APP_AUTH": ":".join(LOGIN),
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(VLSA_BIN), "app", "--db", str(library.db), "--port", str(port), "--no-browser",
                                 "--upload-quota-mb", str(UPLOAD_QUOTA_MB)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/", proc, log)
        login = httpx.post(f"http://127.0.0.1:{port}/login", data={"username": LOGIN[0], "password": LOGIN[1]})
        # No cookie when the login fails: then test_security_file_routes_serve_the_catalogued_media does.
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        yield Server(port, proc, log, tmp, cookie)
    finally:
        stop_process(proc)


def request(server: Server, method: str, target: str, body: bytes | None = None, headers: dict | None = None,
            logged_in: bool = True) -> tuple[int, str]:
    """(status, body as text) of a request sent as is: http.client neither quotes nor normalises
    the target, so the server sees exactly what an attacker would send."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {**({"Cookie": server.cookie} if logged_in else {}), **(headers or {})}
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        try:
            data = response.read()
        except http.client.IncompleteRead as cut:  # a stream that failed after it started
            data = cut.partial
        return response.status, data.decode("utf-8", "replace")
    finally:
        conn.close()


def leaks(library: Library, body: str) -> list[str]:
    """What a response body must not hold: a secret, a traceback, a path of the library's
    surroundings (the catalog, the folders beside it), of the Python installation or of /etc."""
    marks = [SECRET, "Traceback", str(library.base), os.path.realpath(library.base), sys.prefix, "site-packages",
             "/etc/"]
    return [m for m in marks if m in body]


# --- files ---------------------------------------------------------------------------------------

FILE_ROUTES = ["/gradio_api/file=", "/gradio_api/file/", "/file=", "/file/"]


def attacks(library: Library) -> list[str]:
    """File names as an attacker writes them after a file route."""
    root, base = str(library.root), str(library.base)
    return [
        *(str(p) for p in library.secrets),  # hidden files, neighbours, link targets, a failed file
        str(library.db), f"{library.db}-wal", str(root), str(root) + "/",  # the catalog, a folder
        str(ETC_HOSTNAME), "/etc/passwd", "/etc/shadow",  # a failed file's folder (item 2)
        sys.prefix + "/pyvenv.cfg", os.path.realpath(sys.executable),
        f"{root}/../beside.txt", f"{root}/sub/../notes.txt", f"{root}/a.mp4/../notes.txt",  # traversal
        f"{root}/%2e%2e/beside.txt", f"{root}/%2E%2E/beside.txt", f"{root}/sub/%2e%2e%2f.env",  # encoded
        f"{root}/%252e%252e/beside.txt", f"{root}%2f..%2fbeside.txt",  # double encoded
        f"{root}/linked/secret.txt", f"{root}/linked/../beside.txt",  # through the linked folder
        "../" * 12 + "etc/passwd", "..%2f" * 12 + "etc%2fpasswd", "%2Fetc%2Fpasswd", "//etc/passwd",
        f"{base}/outside/secret.txt", f"{root}/a.mp4%00.txt", f"{root}/.env%00.mp4",
        "file:///etc/passwd", "http://127.0.0.1:1/x",
    ]


@pytest.mark.slow
def test_security_file_routes_serve_the_catalogued_media(server, library):
    for path in library.media:
        for route in FILE_ROUTES[:2]:
            status, _ = request(server, "GET", route + str(path))
            assert status == 200, (route, path)
    status, _ = request(server, "GET", FILE_ROUTES[0] + str(library.media[0]), headers={"Range": "bytes=0-9"})
    assert status == 206  # the player seeks


def flip(link: Path, targets: list[Path], stop: threading.Event) -> int:
    """Point `link` at each target in turn (an atomic rename of a new link over it) until `stop`;
    returns how many times. Leaves it pointing at the first target."""
    flips = 0
    while not stop.is_set():
        for target in targets[1:] + targets[:1]:
            tmp = link.with_name(link.name + ".tmp")
            tmp.symlink_to(target)
            os.replace(tmp, link)
            flips += 1
    return flips


FLIP_FETCHES = 400  # the route served the secret about 1 time in 10 before it sent the file it checked


@pytest.mark.slow
def test_security_a_link_flipped_while_fetched_never_serves_its_other_target(server, library):
    """Catches (issue 30, item 1) a file route that checks a path, then opens it again: a
    catalogued name that is a link, flipped between its media and a secret of the same size and
    time while it is fetched, served the secret. Every answer must be the media or a refusal."""
    link = library.root / "flip.wav"
    media, secret = link.resolve(), library.base / "flip-secret.txt"
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        flips = pool.submit(flip, link, [media, secret], stop)
        try:
            answers = [request(server, "GET", FILE_ROUTES[0] + str(link)) for _ in range(FLIP_FETCHES)]
        finally:
            stop.set()
        assert flips.result() > 0
    assert link.resolve() == media
    served = [(status, body[:80]) for status, body in answers if status not in (200, 403) or leaks(library, body)]
    assert not served, f"{len(served)} of {FLIP_FETCHES}: {served[:3]}"


@pytest.mark.slow
def test_security_a_same_size_same_time_replacement_is_refused(server, library):
    """Catches (issue 30, item 2) a check by name, size and time alone: a catalogued file replaced
    by a link to a non-media file of the same size and modification time was served as audio/wav."""
    original = library.root / "replaced.wav"
    aside = library.base / "replaced-original.wav"
    os.rename(original, aside)  # kept (same inode) to be put back
    try:
        original.symlink_to(library.base / "replaced-secret.txt")
        status, body = request(server, "GET", FILE_ROUTES[0] + str(original))
        assert status == 403 and not leaks(library, body), (status, body[:80])
    finally:
        original.unlink()
        os.rename(aside, original)
    assert request(server, "GET", FILE_ROUTES[0] + str(original))[0] == 200


@pytest.mark.slow
def test_security_the_page_gets_its_own_files(server, library):
    """The thumbnails a search returns live in the app's temporary folder: served, as images."""
    from gradio_client import Client

    client = Client(server.url, auth=LOGIN, verbose=False, download_files=False)
    gallery, results, _ = client.predict("a red circle", api_name="/search_text")
    assert results and {r["file"] for r in results} <= {str(p) for p in library.media}
    image = gallery[0]["image"]
    assert Path(image["path"]).is_relative_to(server.tmp)
    response = httpx.get(image["url"], headers={"Cookie": server.cookie}, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/")
    # Named by its content: the browser may keep it. A media file may change: it must ask again.
    assert "immutable" in response.headers.get("cache-control", "")
    media = httpx.get(f"{server.url}{FILE_ROUTES[0]}{library.media[0]}", headers={"Cookie": server.cookie}, timeout=30)
    assert media.status_code == 200 and "immutable" not in media.headers.get("cache-control", "")


@pytest.mark.slow
def test_security_hidden_files_in_the_apps_own_folder_are_refused(server, library):
    """The app's own files are answered without the catalog (app/files.py, FileGuard.own): a
    hidden file, or any file in a hidden folder, there is still refused. Catches an `own` that
    allows the whole folder."""
    workdir = next(server.tmp.glob("vlsa-app-*"))
    hidden = [workdir / ".secret", workdir / ".cache" / "x.jpeg"]
    for path in hidden:
        path.parent.mkdir(exist_ok=True)
        path.write_text(SECRET)
    shown = workdir / "shown.txt"
    shown.write_text("fine")
    for path in hidden:
        status, body = request(server, "GET", FILE_ROUTES[0] + str(path))
        assert status == 403 and not leaks(library, body), path
    assert request(server, "GET", FILE_ROUTES[0] + str(shown))[0] == 200


@pytest.mark.slow
def test_security_file_routes_refuse_everything_else(server, library):
    """Catches (issue 15, items 1 and 2) a file route that serves by folder: a library's hidden
    files and neighbours, the folder of a failed file, a link's target folder; and one that echoes
    the refused path back."""
    served = []
    for route in FILE_ROUTES:
        for name in attacks(library):
            for method in ("GET", "HEAD"):
                status, body = request(server, method, route + name)
                if status not in (400, 403, 404) or leaks(library, body):
                    served.append((method, route + name, status, leaks(library, body)))
    assert not served


@pytest.mark.slow
def test_security_other_routes_that_send_files_refuse_traversal(server, library):
    """Gradio's own static routes (its front end), its proxy and stream routes."""
    for target in ["/static/../../../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                   "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd", "/svelte/../../../../../etc/passwd",
                   "/static/nothing-here.js", "/assets/nothing-here.js", "/favicon.ico/../../etc/passwd",
                   "/gradio_api/proxy=http://127.0.0.1:1/etc/passwd", "/gradio_api/stream/x/0/1/playlist-file",
                   "/gradio_api/custom_component/x/client/../../etc/passwd", "/manifest.json/../../etc/passwd",
                   "/gradio_api/file=" + str(library.base)]:
        status, body = request(server, "GET", target)
        assert status in (400, 403, 404) and not leaks(library, body), (target, status, body[:200])


@pytest.mark.slow
def test_security_file_routes_need_the_login(server, library):
    """Catches a file route answered before gradio's login check (item 11)."""
    status, body = request(server, "GET", FILE_ROUTES[0] + str(library.media[0]), logged_in=False)
    assert status == 401 and not leaks(library, body)
    assert request(server, "GET", "/config", logged_in=False)[0] == 401


@pytest.mark.slow
def test_security_the_page_keeps_no_history_of_searches(server, library):
    """Gradio 6 records every call (the words, the uploaded sounds, the results) in the browser,
    with a page to review them and routes that copy them to a Hugging Face bucket; the app turns
    that off (GRADIO_RUN_HISTORY=False, app/cli.py). Catches the setting dropped: on gradio 6
    /gradio_api/runs then answers 200 and the page's config says run_history true."""
    for target in ["/gradio_api/runs", "/gradio_api/run-history/records", "/gradio_api/run-history/buckets"]:
        status, body = request(server, "GET", target)
        assert status == 404 and not leaks(library, body), (target, status, body[:200])
    status, body = request(server, "GET", "/config")
    assert status == 200 and json.loads(body).get("run_history", False) is False


# --- host names ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_security_answers_only_its_own_host_names(server, library):
    """Catches a server that answers any Host header (item 3: DNS rebinding)."""
    for host in ["evil.example", f"evil.example:{server.port}", f"127.0.0.1.evil.example:{server.port}",
                 f"localhost.evil.example:{server.port}", "", "[::1", f"attacker.localhost:{server.port}"]:
        status, body = request(server, "GET", "/", headers={"Host": host})
        assert status == 400 and not leaks(library, body), host
    status, _ = request(server, "GET", FILE_ROUTES[0] + str(library.media[0]), headers={"Host": "evil.example"})
    assert status == 400
    for host in [f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"LOCALHOST:{server.port}",
                 f"[::1]:{server.port}"]:
        assert request(server, "GET", "/", headers={"Host": host})[0] == 200, host


def test_security_host_names_of_a_wildcard_bind_are_its_addresses():
    from app.server import HostNames

    every = HostNames.for_bind("0.0.0.0")
    assert every.accepts("192.168.1.5:7860") and every.accepts("[fe80::1]:7860") and every.accepts("localhost")
    assert not every.accepts("evil.example:7860") and not every.accepts("192.168.1.5.nip.io")
    one = HostNames.for_bind("192.168.1.5")
    assert one.accepts("192.168.1.5:7860") and one.accepts("127.0.0.1") and not one.accepts("10.0.0.1")


# --- errors --------------------------------------------------------------------------------------

MALFORMED = [
    ("POST", "/gradio_api/queue/join", b'{"data": [], "fn_index": 99999, "session_hash": "x"}'),
    ("POST", "/gradio_api/queue/join", b'{"data": [], "fn_index": -1, "trigger_id": 99999999999999999999, '
                                       b'"session_hash": "x"}'),
    ("POST", "/gradio_api/queue/join", b'{"data": null, "fn_index": 0, "session_hash": "x"}'),
    ("POST", "/gradio_api/queue/join", b"not json"),
    ("POST", "/gradio_api/queue/join", b"[1, 2]"),
    ("POST", "/gradio_api/queue/join", b'{"data": [1e999], "fn_index": "x", "session_hash": []}'),
    ("POST", "/gradio_api/run/predict", b'{"data": []}'),
    ("POST", "/gradio_api/call/find_similar", b'{"data": ["../../etc/passwd"]}'),
    ("POST", "/gradio_api/call/nothing", b'{"data": []}'),
    ("POST", "/gradio_api/upload", b"not multipart"),
    ("POST", "/gradio_api/upload?upload_id=../../x", b"--b\r\nContent-Disposition: form-data; name=\"files\"; "
                                                      b"filename=\"../../.env\"\r\n\r\nK\r\n--b--\r\n"),
    ("POST", "/gradio_api/cancel", b"{}"),
    ("POST", "/login", b"username=alice"),
    ("GET", "/gradio_api/queue/data?session_hash=../../etc", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("method, target, body", MALFORMED)
def test_security_malformed_requests_get_one_line_errors(server, library, method, target, body):
    """Catches (item 4) gradio's debug error page: a traceback with the virtual environment's
    paths in the response."""
    headers = {"Content-Type": "multipart/form-data; boundary=b" if b"--b" in (body or b"") else "application/json"}
    status, text = request(server, method, target, body=body, headers=headers)
    assert not leaks(library, text), (status, text[:300])
    if status >= 500:
        assert len(text.strip().splitlines()) == 1, text[:300]


@pytest.mark.slow
def test_security_find_similar_with_a_bad_id_says_no_such_result(server, library):
    """Catches (item 4) SQLite's, the catalog's and Python's own texts reaching the page: "Python
    int too large to convert to SQLite INTEGER", "no window with id N in /path/to/library.db",
    "type str doesn't define __round__ method" (launch(show_error=True))."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server.url, auth=LOGIN, verbose=False, download_files=False)
    for window in (99999999999999999999999, 123456, -5):
        with pytest.raises(AppError) as caught:
            client.predict(window, api_name="/find_similar")
        assert "No such result" in str(caught.value) and not leaks(library, str(caught.value))
    with pytest.raises(AppError) as caught:  # fails in gradio's own input handling: no gr.Error
        client.predict("../../etc/passwd", api_name="/find_similar")
    # gradio_client's words for an error whose text the server keeps to its log
    assert "has not enabled verbose error reporting" in str(caught.value)


def test_security_callbacks_say_no_such_result_in_words(library, tmp_path):
    """The same at the callback, without a server: huge, unknown, infinite and NaN window ids."""
    from app import callbacks
    from app.context import make_context
    from catalog.service import SearchService

    ctx = make_context(SearchService.open(library.db), workdir=tmp_path)
    try:
        for window in (1e30, 123456.0, float("inf"), float("nan"), 2.0**63, -1.0):
            with pytest.raises(gr.Error, match="No such result") as caught:
                callbacks.find_similar(ctx, window)
            assert not leaks(library, str(caught.value))
    finally:
        ctx.service.catalog.close()


def upload(server: Server, name: str, data: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/gradio_api/upload", files={"files": (name, data)},
                      headers={"Cookie": server.cookie, **(headers or {})}, timeout=30)


def uploads_kept(server: Server) -> list[Path]:
    workdir = next(server.tmp.glob("vlsa-app-*"))
    return [p for p in (workdir / "gradio").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_security_requests_from_another_site_are_refused(server, library):
    """Catches (issue 30, item 4) uploads and other POSTs taken from any website: a cross-site
    multipart POST needs no preflight, so a page elsewhere could fill the disk. The app's own
    page (its Origin is the app) and clients that send no Origin (gradio_client) still upload."""
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}, {"Origin": f"http://127.0.0.1.evil.example:{server.port}"}):
        response = upload(server, "x.wav", b"RIFF" * 10, headers)
        assert response.status_code == 403 and not leaks(library, response.text), headers
        status, _ = request(server, "POST", "/login", b"username=a&password=b",
                            {"Content-Type": "application/x-www-form-urlencoded", **headers})
        assert status == 403, headers
    assert upload(server, "own.wav", b"RIFF", {"Origin": server.url}).status_code == 200
    assert upload(server, "client.wav", b"RIFF").status_code == 200


@pytest.mark.slow
def test_security_uploads_kept_stay_under_the_quota(server, library):
    """Catches (item 4) uploads kept without bound until the app stops: each upload is taken, but
    the oldest go once the total passes --upload-quota-mb; one request over it is refused."""
    part = int(UPLOAD_QUOTA_MB * 2**20 * 0.4)
    names = [f"quota-{i}.bin" for i in range(4)]
    for name in names:
        assert upload(server, name, b"\0" * part).status_code == 200
    # this test's uploads only: the cache also holds what the app serves (result thumbnails), and
    # an earlier test's may still be landing there on a loaded machine
    kept = [p for p in uploads_kept(server) if p.name in names]
    assert sum(p.stat().st_size for p in kept) <= UPLOAD_QUOTA_MB * 2**20, [(p.name, p.stat().st_size) for p in kept]
    kept_names = {p.name for p in kept}
    assert names[-1] in kept_names and names[0] not in kept_names
    big = upload(server, "big.bin", b"\0" * (UPLOAD_QUOTA_MB * 2**20 + 1))
    assert big.status_code == 413 and not leaks(library, big.text)


@pytest.mark.slow
def test_security_an_uploaded_sound_is_deleted_once_searched(server, library):
    """Catches (item 4) a query sound kept after its search, and (item 5) an error that names the
    app's temporary folder: a sound that fails to decode is named by its own name only."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    sound = make_audio(server.tmp.parent / "searched-once.wav", 0.5)
    client = Client(server.url, auth=LOGIN, verbose=False, download_files=False)
    client.predict(handle_file(sound), api_name="/search_audio")
    assert not [p for p in uploads_kept(server) if p.name == sound.name]
    nan = make_float_wav(server.tmp.parent / "nan.wav", np.full(8000, np.nan, dtype=np.float32))
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(nan), api_name="/search_audio")
    assert str(caught.value).startswith("nan.wav: non-finite samples"), str(caught.value)
    assert str(server.tmp) not in str(caught.value) and "vlsa-app-" not in str(caught.value)
    assert not [p for p in uploads_kept(server) if p.name == nan.name]  # refused: deleted too


@pytest.mark.slow
def test_security_a_users_mistake_is_one_line_in_the_log(server, library):
    """Catches (item 10) gradio's 45-line traceback in the server's log for an empty query,
    "find similar" with nothing selected and a sound that is not audio: one line each."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, auth=LOGIN, verbose=False, download_files=False)
    text = server.tmp.parent / "not-a-sound.wav"
    text.write_text("not a sound\n" * 100)
    before = len(server.log.read_text())
    for args, api in [(("  ",), "/search_text"), ((None,), "/find_similar"), ((handle_file(text),), "/search_audio")]:
        with pytest.raises(AppError):
            client.predict(*args, api_name=api)
    added = server.log.read_text()[before:]
    assert "Traceback" not in added, added[:2000]
    for words in ("Type what you are looking for", "Select a result first", "not-a-sound.wav is not an audio file"):
        assert len([line for line in added.splitlines() if words in line]) == 1, (words, added)


@pytest.mark.slow
def test_security_every_route_but_the_login_page_needs_the_login(server, library):
    """Catches (item 11) routes gradio leaves open: /gradio_api/cancel and /gradio_api/app_id
    answered without a login. The login page and its files stay open (else no one could log in)."""
    for method, target, body in [("POST", "/gradio_api/cancel", b"{}"), ("GET", "/gradio_api/app_id", None),
                                 ("GET", "/gradio_api/info", None), ("GET", "/gradio_api/heartbeat/x", None),
                                 ("GET", "/gradio_api/queue/data?session_hash=x", None), ("GET", "/monitoring/x", None)]:
        status, text = request(server, method, target, body, {"Content-Type": "application/json"}, logged_in=False)
        assert status == 401 and not leaks(library, text), (target, status, text[:200])
    status, page = request(server, "GET", "/", logged_in=False)
    assert status == 200
    files = set(re.findall(r'(?:src|href)="(?:\./|/)?((?:assets|static|svelte)/[^"]+|manifest\.json)"', page))
    assert files
    for name in files:
        assert request(server, "GET", "/" + name, logged_in=False)[0] == 200, name


# --- serving beyond this computer ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["app", "demo"])
def test_security_any_host_but_loopback_needs_a_login(monkeypatch, library, command):
    """Catches (item 11) `--host 0.0.0.0` serving the whole catalog to the network with no login,
    or with a default one. Nothing is bound or served here: serve and check_port are stubbed."""
    import app.cli
    from app.cli import app as app_command
    from app.demo import demo as demo_command

    served = []
    monkeypatch.setattr(app.cli, "serve", lambda *args, **kwargs: served.append(kwargs.get("login")))
    monkeypatch.setattr(app.cli, "check_port", lambda host, port: None)
    monkeypatch.setattr("app.demo.prepare_demo", lambda *args, **kwargs: pytest.fail("the demo was built"))
    monkeypatch.delenv("VLSA_APP_AUTH", raising=False)
    cmd, args = (app_command, ["--db", str(library.db)]) if command == "app" else (demo_command, [])
    for host in ("0.0.0.0", "::", "192.168.1.5"):
        result = CliRunner().invoke(cmd, [*args, "--host", host])
        assert result.exit_code != 0 and "needs a login" in result.output and "VLSA_APP_AUTH" in result.output
        assert result.output.count("\n") == 1 and not served
    result = CliRunner().invoke(cmd, [*args, "--host", "0.0.0.0", "--auth", "bob:"])
    assert result.exit_code != 0 and "USER:PASSWORD" in result.output and not served
    if command == "app":
        result = CliRunner().invoke(cmd, [*args, "--host", "0.0.0.0"], env={"VLSA_APP_AUTH": "bob:pw:with:colons"})
        assert result.exit_code == 0, result.output
        assert served == [("bob", "pw:with:colons")]


@pytest.mark.slow
def test_security_says_at_start_what_it_serves_to_whom(server, library):
    first = server.log.read_text().splitlines()
    line = next(s for s in first if "serving" in s)
    assert f"{library.db}: serving its {len(library.media)} media files" in line
    assert f"on http://127.0.0.1:{server.port} to this computer only, login required (user alice)" in line
    assert LOGIN[1] not in server.log.read_text()


# --- the temporary folder ------------------------------------------------------------------------


@pytest.mark.slow
def test_security_sigterm_removes_the_temporary_folder_with_the_uploads(server, library):
    """Catches (item 9) an app that cleans its temporary folder on Ctrl-C only: SIGTERM skipped
    the atexit, leaving the users' uploaded and recorded sounds behind. Runs last: it stops the app."""
    sound = make_audio(server.tmp.parent / "query.wav", 0.5)
    with open(sound, "rb") as f:
        upload = httpx.post(f"{server.url}/gradio_api/upload", files={"files": f},
                            headers={"Cookie": server.cookie}, timeout=30)
    assert upload.status_code == 200, upload.text
    [uploaded] = json.loads(upload.text)
    assert Path(uploaded).is_file() and Path(uploaded).is_relative_to(server.tmp)
    assert request(server, "GET", FILE_ROUTES[0] + uploaded)[0] == 200  # the app's own files are served
    workdirs = list(server.tmp.glob("vlsa-app-*"))
    assert len(workdirs) == 1
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=60)
    assert not workdirs[0].exists(), sorted(p.name for p in workdirs[0].rglob("*"))


# --- the middlewares in process ------------------------------------------------------------------


def test_security_an_exception_inside_the_app_is_one_line_for_the_client(tmp_path, caplog):
    """Catches (issue 30, must show) the one-line-error middleware (app/server.py: OneLineErrors)
    left out: a route that raises inside gradio's app, with the app's own middlewares around it
    (launch_options) and gradio's debug error page on, must answer one line in the product's words
    with no Python path; the traceback goes to the log."""
    from starlette.testclient import TestClient

    from app.server import INTERNAL_ERROR, launch_options

    with gr.Blocks() as blocks:
        gr.Markdown("nothing")
    options = launch_options(lambda path: pytest.fail("no file is asked for"), "127.0.0.1", tmp_path, None, 2**20)
    app = gr.routes.App.create_app(blocks, app_kwargs=options["app_kwargs"], debug=True)

    @app.get("/raises")
    def raises():
        raise RuntimeError(f"a bug, in {__file__}")

    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        response = client.get("/raises")
    assert response.status_code == 500 and response.text == INTERNAL_ERROR, response.text[:300]
    assert "a bug, in" in caplog.text and "Traceback" in caplog.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_security_wrong_passwords_slow_down_the_logins_that_follow():
    """Catches (item 6) logins with no limit (200 wrong passwords in 8 s, then the right one
    worked): after FREE_LOGIN_TRIES wrong ones from an address every login waits (429, the right
    password too) for a back-off that doubles; after it the right password gets in and clears the
    count. Another address is not held up. Uses a clock the test moves, not sleeps."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from app.gates import FREE_LOGIN_TRIES, LoginThrottle

    async def login(request):  # gradio's answers: 200 for the right password, 400 for a wrong one
        form = await request.form()
        return JSONResponse({}, status_code=200 if form["password"] == "right" else 400)

    clock = FakeClock()
    app = LoginThrottle(Starlette(routes=[Route("/login", login, methods=["POST"])]), clock=clock)
    client, other = TestClient(app, client=("10.0.0.1", 1)), TestClient(app, client=("10.0.0.2", 1))

    def attempt(who: TestClient, password: str) -> int:
        return who.post("/login", data={"username": "alice", "password": password}).status_code

    assert [attempt(client, "wrong") for _ in range(FREE_LOGIN_TRIES)] == [400] * FREE_LOGIN_TRIES
    assert attempt(client, "wrong") == 429 and attempt(client, "right") == 429
    assert attempt(other, "right") == 200
    clock.now += 1.0  # the first back-off: 1 s
    assert attempt(client, "wrong") == 400  # the sixth failure: 2 s now
    clock.now += 1.0
    assert attempt(client, "right") == 429
    clock.now += 1.0
    assert attempt(client, "right") == 200
    assert attempt(client, "wrong") == 400  # cleared: free tries again
