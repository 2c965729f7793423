"""Middlewares that decide who may ask the app what, before gradio's routes answer.

- `SameSite`: a request that can change something (an upload, a search, a login) from a page on
  another site is refused. A browser sends a cross-site form or multipart POST without asking
  first (no CORS preflight), so CORS alone would let any website upload into the app.
- `LoginRequired`: with a login set, every route but the login page and what it loads needs it
  (gradio leaves some open, /gradio_api/cancel and /gradio_api/app_id among them).
- `LoginThrottle`: after a few wrong passwords from one address, each further try waits longer.
- `UploadQuota`: what the app keeps from uploads stays under a total, the oldest removed first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.paths import is_under

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # read only: a cross-site GET gets nothing it can read
CROSS_SITE = "Refused: this request came from a page on another site.\n"
# What the login page itself loads before anyone has logged in (gradio/routes.py), and the call
# gradio's launch() makes to its own server once (it runs the start-up events, then answers False).
OPEN_ROUTES = frozenset({"/", "/login", "/login/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                         "/manifest.json", "/robots.txt", "/pwa_icon", "/gradio_api/startup-events"})
OPEN_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")
LOGIN_ROUTES = frozenset({"/login", "/login/"})
FREE_LOGIN_TRIES = 5  # wrong passwords from one address before each further try has to wait
MAX_LOGIN_WAIT = 300.0  # seconds: the back-off doubles from 1 s up to this
TRACKED_CLIENTS = 4096  # addresses remembered, the least recent forgotten (memory stays bounded)
UPLOAD_ROUTES = frozenset({"/gradio_api/upload", "/upload"})
UPLOAD_QUOTA_BYTES = 200 * 2**20  # all uploads kept at once: eight of the largest query sounds


def logged_in(app: ASGIApp, connection: HTTPConnection) -> bool:
    """Gradio's test for its other routes (gradio/routes.py: get_current_user, login_check): no
    login configured, or the cookie of a session that logged in."""
    if getattr(app, "auth", None) is None:
        return True
    cookie = app.cookie_id
    token = (connection.cookies.get(f"access-token-{cookie}")
             or connection.cookies.get(f"access-token-unsecure-{cookie}"))
    return app.tokens.get(token) is not None


async def refuse(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """`response` to an HTTP request; a websocket is closed instead (policy violation)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    else:
        await response(scope, receive, send)


class SameSite:
    """403 for a request that is not read-only and whose Origin (or, without one, Referer) is
    not one of `hosts`: the names HostCheck answers (app/server.py). Clients that are not
    browsers (gradio_client, curl) send neither header and pass."""

    def __init__(self, app: ASGIApp, hosts):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and not self.same_site(Headers(scope=scope)):
            await PlainTextResponse(CROSS_SITE, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def same_site(self, headers: Headers) -> bool:
        source = headers.get("origin") or headers.get("referer")
        if source is None:
            return True
        try:
            netloc = urlsplit(source).netloc  # "null" (a sandboxed page, a file) has none: refused
        except ValueError:
            return False
        return self.hosts.accepts(netloc)


class LoginRequired:
    """With a login set, 401 for every route but the login page and its files until logged in."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not is_open(scope["path"]) \
                and not logged_in(scope["app"], HTTPConnection(scope)):
            await refuse(JSONResponse({"detail": "Not authenticated"}, status_code=401), scope, receive, send)
            return
        await self.app(scope, receive, send)


def is_open(path: str) -> bool:
    """Whether the login page needs `path` before anyone logs in. `..` is refused by the static
    routes themselves (tests/test_security.py)."""
    return path in OPEN_ROUTES or path.startswith(OPEN_PREFIXES)


@dataclass
class Failures:
    count: int = 0
    until: float = 0.0  # clock time before which this address may not try again


class LoginThrottle:
    """Wrong passwords from one client address: the first FREE_LOGIN_TRIES are answered at once;
    after that each login (the right password too) is refused 429 until a back-off that doubles
    with each failure (1 s, 2 s, 4 s, ... up to MAX_LOGIN_WAIT); a login that succeeds clears it.
    Behind a reverse proxy every client has the proxy's address and shares one count."""

    def __init__(self, app: ASGIApp, clock: Callable[[], float] = time.monotonic, free: int = FREE_LOGIN_TRIES):
        self.app, self.clock, self.free = app, clock, free
        self.failures: OrderedDict[str, Failures] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in LOGIN_ROUTES:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else ""
        wait = self.failures[client].until - self.clock() if client in self.failures else 0.0
        if wait > 0:
            seconds = math.ceil(wait)
            await PlainTextResponse(f"Too many wrong passwords: try again in {seconds} s.\n", status_code=429,
                                    headers={"Retry-After": str(seconds)})(scope, receive, send)
            return
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        if status == 200:
            self.failures.pop(client, None)
        elif 400 <= status < 500:
            self.failed(client)

    def failed(self, client: str) -> None:
        record = self.failures.pop(client, Failures())
        record.count += 1
        if record.count >= self.free:
            record.until = self.clock() + min(2.0 ** (record.count - self.free), MAX_LOGIN_WAIT)
        self.failures[client] = record  # most recent last
        while len(self.failures) > TRACKED_CLIENTS:
            self.failures.popitem(last=False)


class UploadQuota:
    """Uploads keep at most `quota` bytes in `cache` at once: an upload that declares more (or no
    length) is refused 413, and after each upload the oldest are removed until the total fits.
    A search deletes its own upload when done (app/callbacks.py), so this bounds what a page that
    uploads and never searches can leave."""

    def __init__(self, app: ASGIApp, quota: int, cache: str):
        self.app, self.quota, self.cache = app, quota, os.path.realpath(cache)
        self.kept: deque[str] = deque()  # uploaded files, oldest first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") not in UPLOAD_ROUTES:
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if not length.isdigit() or int(length) > self.quota:
            await PlainTextResponse("Upload too large for the app's upload space.\n", status_code=413)(
                scope, receive, send)
            return
        status, body = 0, bytearray()

        async def kept(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, kept)
        if status == 200:
            self.keep(body)

    def keep(self, body: bytes) -> None:
        """Record the files an upload answered with (a JSON list of paths), then trim to the quota."""
        try:
            paths = json.loads(body)
        except ValueError:
            paths = []
        self.kept.extend(os.path.realpath(p) for p in paths if isinstance(p, str) and is_under(os.path.realpath(p), self.cache))
        sizes = ((p, _size(p)) for p in self.kept)  # searched ones are gone, perhaps since the last line
        present = deque((p, size) for p, size in sizes if size is not None)
        total = sum(size for _, size in present)
        while total > self.quota and present:
            oldest, size = present.popleft()
            total -= size
            with contextlib.suppress(FileNotFoundError):  # a search may have deleted it meanwhile
                os.remove(oldest)
            log.info("upload space over %d MB: removed the oldest upload", self.quota // 2**20)
        self.kept = deque(p for p, _ in present)


def _size(path: str) -> int | None:
    """The size of the regular file at `path`; None once it is gone (a search deletes its upload
    at any time, so a test for the file and a read of its size may see two different states)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None
