"""The HTTP side of `vlsa app`: what the server answers before gradio's own routes do.

Gradio builds its FastAPI app inside `launch()`; `launch_options` hands it its ASGI middlewares
through `app_kwargs` (FastAPI's `middleware=`), outermost first (HostCheck, OneLineErrors, the
gates, FileRoutes):

- `HostCheck`: only the host names the server was started for are answered, so a page on another
  site cannot reach the app by DNS rebinding (the browser sends that site's name as Host).
- `SameSite`, `LoginThrottle`, `LoginRequired`, `UploadQuota` (app/gates.py): who may ask
  what: no cross-site requests that change anything, the login before every route but the login
  page's, wrong passwords slowed down, and a cap on what uploads keep.
- `OneLineErrors`: an unhandled exception becomes a one-line 500; the traceback goes to the
  server log. Gradio creates its app with debug=True, whose error handler would otherwise send the
  traceback, with the virtual environment's paths, to the client.
- `FileRoutes`: gradio's file routes are answered here from `FileGuard` (app/files.py): the
  catalogued media files and the app's own temporary files, anything else a 403 naming no path.
  The file is opened once, checked as opened, and sent from that open file (never reopened by
  its path, which a link swapped meanwhile could lead elsewhere).
  Gradio's own handler decides by folder (`allowed_paths`) and echoes the path it refuses.
  Gradio's cached files are named by a hash of their content, so the browser may keep them: a
  thumbnail shown by an earlier search is drawn again without a request.
"""

from __future__ import annotations

import ipaddress
import logging
import mimetypes
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.files import GRADIO_CACHE, FileRefused, OpenFile
from app.gates import LoginRequired, LoginThrottle, SameSite, UploadQuota, logged_in
from vlsa.errors import UserError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # binds every interface of the machine
# Gradio's routes that send the file named in the URL (gradio/routes.py: `file`, `file_deprecated`).
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
UNKNOWN_HOST = "Unknown host name: open the app by the address it was started with.\n"
FILE_REFUSED = "File not allowed: the app serves only the media files of its catalog.\n"
# A file gradio cached, CACHE/<sha256 of its content>/NAME: what that URL sends never changes.
CONTENT_ADDRESSED = re.compile(r"[0-9a-f]{64}/[^/]+")
KEEP = "private, max-age=86400, immutable"
INTERNAL_ERROR = "The server could not answer this request; the details are in its log.\n"
AUTH_ENV = "VLSA_APP_AUTH"
AUTH_HELP = ("Login for the page and its API; required unless --host is this computer. Prefer the "
             "environment variable: a password on the command line is visible to other users.")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the app on this computer."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_login(host: str, auth: str | None) -> tuple[str, str] | None:
    """(user, password) from --auth or VLSA_APP_AUTH; UserError when serving beyond this
    computer without one (there is no default password)."""
    if auth is None:
        if is_loopback(host):
            return None
        raise UserError(f"--host {host} lets other computers reach your library, so it needs a login: "
                        "set VLSA_APP_AUTH=USER:PASSWORD (or pass --auth USER:PASSWORD)")
    user, _, password = auth.partition(":")
    if not user or not password:
        raise UserError("the login must be USER:PASSWORD, both non-empty (--auth or VLSA_APP_AUTH)")
    return user, password


def host_name(header: str) -> str | None:
    """The name in a Host header ('[::1]:7860' -> '::1', 'LocalHost.' -> 'localhost'); None if
    it is not one."""
    try:
        name = urlsplit("//" + header).hostname
    except ValueError:  # '[::1' and the like
        return None
    return name.rstrip(".") if name else None


@dataclass(frozen=True)
class HostNames:
    """The Host header values a server bound to one address answers."""

    names: frozenset[str]
    any_address: bool  # bound to every interface: reached by any of the machine's addresses

    @classmethod
    def for_bind(cls, host: str) -> HostNames:
        names = set(LOOPBACK_NAMES) | {host.strip("[]").lower()}
        if host in ANY_ADDRESS:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        return cls(frozenset(names - {""}), host in ANY_ADDRESS)

    def accepts(self, header: str) -> bool:
        name = host_name(header)
        if name is None:
            return False
        if name in self.names:
            return True
        # DNS rebinding needs a name the attacker's DNS answers for; an address typed as such
        # (http://192.168.1.5:7860) is the machine itself.
        return self.any_address and _is_address(name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class HostCheck:
    """400 for a request whose Host header is not one of `hosts` (HTTP and websockets).

    Starlette's TrustedHostMiddleware reads the name as the text before the first ':', which
    breaks on '[::1]:7860', and cannot accept every address of a wildcard bind."""

    def __init__(self, app: ASGIApp, hosts: HostNames):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.hosts.accepts(Headers(scope=scope).get("host", "")):
            await PlainTextResponse(UNKNOWN_HOST, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class OneLineErrors:
    """An unhandled exception: logged with its traceback, answered with one line (status 500)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:  # too late for a status: the server closes the connection (and logs it)
                raise
            log.exception("%s %s failed", scope["method"], scope["path"])
            await PlainTextResponse(INTERNAL_ERROR, status_code=500)(scope, receive, send)


class FileRoutes:
    """Gradio's file routes, answered from `open_served(path)`: an OpenFile the app may send, or
    FileRefused (it may block: run in a thread)."""

    def __init__(self, app: ASGIApp, open_served: Callable[[str], OpenFile], cache: str):
        self.app, self.open_served, self.cache = app, open_served, os.path.realpath(cache)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = next((r for r in FILE_ROUTES if scope.get("path", "").startswith(r)), None)
        if scope["type"] != "http" or route is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if not logged_in(scope["app"], HTTPConnection(scope)):
            await JSONResponse({"detail": "Not authenticated"}, status_code=401)(scope, receive, send)
            return
        try:
            opened = await run_in_threadpool(self.open_served, scope["path"][len(route):])
        except FileRefused:
            await PlainTextResponse(FILE_REFUSED, status_code=403)(scope, receive, send)
            return
        try:
            response = file_response(opened)
            if CONTENT_ADDRESSED.fullmatch(os.path.relpath(opened.real, self.cache)):
                response.headers["Cache-Control"] = KEEP
            await response(scope, receive, send)
        finally:
            opened.close()  # after the last byte: FileResponse reads the open file through `pinned`


def file_response(opened: OpenFile) -> FileResponse:
    """The open file, read through its pinned name (Starlette's FileResponse answers Range and
    HEAD from it), typed by its own name. Pictures and sounds are shown in the page; anything else
    (an upload can be any file) is a download, so a browser never runs it as a page. SVG can hold
    scripts: a download too."""
    name = os.path.basename(opened.real)
    kind, _ = mimetypes.guess_type(name)
    inline = kind is not None and kind.split("/")[0] in ("audio", "video", "image") and kind != "image/svg+xml"
    return FileResponse(opened.pinned, stat_result=opened.stat,
                        media_type=kind if inline else "application/octet-stream",
                        content_disposition_type="inline" if inline else "attachment", filename=name)


def launch_options(open_served: Callable[[str], OpenFile], host: str, workdir: str | os.PathLike,
                   login: tuple[str, str] | None, upload_quota: int) -> dict:
    """gradio launch() arguments for the middlewares above, the login and the error display."""
    hosts, cache = HostNames.for_bind(host), os.path.join(workdir, GRADIO_CACHE)
    middleware = [Middleware(HostCheck, hosts=hosts), Middleware(OneLineErrors), Middleware(SameSite, hosts=hosts),
                  Middleware(LoginThrottle), Middleware(LoginRequired),
                  Middleware(UploadQuota, quota=upload_quota, cache=cache),
                  Middleware(FileRoutes, open_served=open_served, cache=cache)]
    return {
        "app_kwargs": {"middleware": middleware},
        # What gradio accepts as a callback's output file (the player's clips); the file route
        # that would serve this folder wholesale is FileRoutes' now.
        "allowed_paths": [os.fspath(workdir)],
        "show_error": False,  # an exception's text stays in the log; gr.Error messages still show
        "auth": [login] if login else None,
        "auth_message": "This library is shared with a login: ask whoever started the app." if login else None,
    }
