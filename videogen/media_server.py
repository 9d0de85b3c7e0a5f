"""A read-only HTTP server for the studio's media, bound to 127.0.0.1 by default.

It lets the Dagster UI show keyframes and contact sheets inline and lets a browser open a
project's storyboard over http. It serves media (images, audio, video), subtitles and
``storyboard.html`` files under the studio root and nothing else (never a script.md,
project.yaml, shot.json or a creator's notes): no directory listings (the root page lists
projects that have a storyboard), no paths with ``..``, empty or hidden segments, nothing a
symlink leads outside the root, and only GET and HEAD (plus OPTIONS for CORS preflight).

It is a Starlette app served by uvicorn. Files go out through Starlette's ``FileResponse``,
which answers byte ranges so ``<video>`` and ``<audio>`` can seek; responses carry an ETag and
``Cache-Control: no-cache`` so a re-rendered keyframe shows up on the next look.

When bound to a loopback address it only answers requests whose Host header names a
loopback host, which keeps DNS-rebinding pages from reading the studio.
"""

from __future__ import annotations

import contextlib
import html
import logging
import mimetypes
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videogen_domain.paths import media_url, projects_dir

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_ALLOWED_ORIGINS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MediaServer",
    "content_type",
    "create_app",
    "make_server",
    "media_url",
    "resolve_request_path",
    "serve",
    "start_in_thread",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3031
# The Dagster UI's usual origins; CORS answers only these unless told otherwise.
DEFAULT_ALLOWED_ORIGINS: tuple[str, ...] = (
    "http://127.0.0.1:3000",
    "http://localhost:3000",
)
CONTENT_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
    ".otio": "application/json",
    ".yaml": "text/yaml; charset=utf-8",
    ".yml": "text/yaml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".xml": "application/xml",
    ".fcpxml": "application/xml",
    ".edl": "text/plain; charset=utf-8",
}
SERVED_SUFFIXES = frozenset(
    {
        *(".png", ".jpg", ".jpeg", ".webp", ".gif"),
        *(".wav", ".mp3", ".flac", ".ogg", ".m4a"),
        *(".mp4", ".m4v", ".webm", ".mov"),
        *(".vtt", ".srt"),
    }
)
"""What the server serves besides storyboards: media and subtitles. A creator's script.md,
project.yaml, shot.json and notes are not media and are answered 404."""
SERVED_PAGES = frozenset({"storyboard.html"})
ALLOWED_METHODS = "GET, HEAD, OPTIONS"
# Never served: the studio database and its journals.
_PRIVATE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".sqlite3")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The one Range form passed on to FileResponse; ASCII digits only.
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_MAX_DIGITS = 18  # more digits than any file size: capped, read as "past the end"
_STOP_TIMEOUT_S = 5.0
# Bytes per read: each read is a hop to a worker thread, so fewer, larger ones (Starlette: 64 KiB).
_CHUNK = 1024 * 1024


def content_type(path: Path) -> str:
    """The Content-Type the server sends for ``path``."""
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def resolve_request_path(root: Path, url_path: str) -> tuple[HTTPStatus, Path | None]:
    """Map a request path to a regular file under ``root``: ``(200, file)`` or ``(error, None)``.

    403 for ``..``/``.`` segments, encoded slashes, NUL bytes, empty segments (``//etc``) and
    paths a symlink leads outside ``root``; 404 for hidden names, directories and what does
    not exist. Raises ``UnicodeDecodeError`` for percent-escapes that are not UTF-8.
    """
    if url_path.startswith("/"):  # origin form; "//x" is a path here, never a host
        raw = url_path.split("?", 1)[0].split("#", 1)[0]
    else:  # absolute form: http://host/path
        raw = urlsplit(url_path).path
    if not raw.startswith("/"):
        return HTTPStatus.FORBIDDEN, None
    segments = raw[1:].split("/")
    decoded: list[str] = []
    for n, seg in enumerate(segments):
        part = unquote(seg, errors="strict") if seg else ""
        if part == "" and n == len(segments) - 1 and n > 0:
            return HTTPStatus.NOT_FOUND, None  # a trailing slash names a directory
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
            return HTTPStatus.FORBIDDEN, None
        if part.startswith(".") or part.lower().endswith(_PRIVATE_SUFFIXES):
            return HTTPStatus.NOT_FOUND, None  # hidden files, temporaries, the database
        decoded.append(part)
    real_root = root.resolve()
    candidate = real_root.joinpath(*decoded)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return HTTPStatus.NOT_FOUND, None
    if real != real_root and real_root not in real.parents:
        return HTTPStatus.FORBIDDEN, None
    try:
        mode = real.stat().st_mode
    except OSError:
        return HTTPStatus.NOT_FOUND, None
    if not stat.S_ISREG(mode):
        return HTTPStatus.NOT_FOUND, None
    if not _servable(decoded[-1]) or not _servable(real.name):
        return HTTPStatus.NOT_FOUND, None
    return HTTPStatus.OK, real


def _servable(name: str) -> bool:
    """Media, subtitles and storyboards only."""
    lower = name.lower()
    return lower in SERVED_PAGES or Path(lower).suffix in SERVED_SUFFIXES


def _range_for_file_response(header: str | None) -> str | None:
    """The Range header ``FileResponse`` is given; ``None`` to serve the whole file.

    Only one ASCII ``bytes=first-last`` range is passed on; several ranges, other units and
    anything malformed are ignored, as RFC 9110 allows (FileResponse would answer 400 or a
    multipart body). Numbers longer than any file size are capped; a range that ends before
    it starts becomes the empty suffix ``bytes=-0``, which FileResponse answers 416.
    """
    m = _RANGE.fullmatch(header.strip()) if header else None
    if m is None:
        return None
    first, last = (_capped(digits) for digits in m.groups())
    if not first and not last:
        return None
    if first and last and int(last) < int(first):
        return "bytes=-0"
    return f"bytes={first}-{last}"


def _capped(digits: str) -> str:
    if not digits:
        return ""
    digits = digits.lstrip("0") or "0"
    return digits if len(digits) <= _MAX_DIGITS else str(10**_MAX_DIGITS)


def _storyboards(root: Path) -> list[Path]:
    """Storyboards the server would serve, relative to ``root``: ``<dir>/storyboard.html`` and
    ``projects/<project>/storyboard.html``."""
    found: list[Path] = []
    for parent in (root, projects_dir(root)):
        with contextlib.suppress(OSError):
            for entry in sorted(parent.iterdir(), key=lambda p: p.name.lower()):
                rel = (entry / "storyboard.html").relative_to(root)
                url = "/" + "/".join(quote(part) for part in rel.parts)
                if resolve_request_path(root, url)[0] == HTTPStatus.OK:
                    found.append(rel)
    return found


def _error(status: HTTPStatus, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(f"{status.value} {status.phrase}\n", status, headers=headers)


class _MediaFile(FileResponse):
    """A ``FileResponse`` that sees ``range_header`` in place of the request's Range."""

    chunk_size = _CHUNK

    def __init__(self, path: Path, st: os.stat_result, etag: str, range_header: str | None) -> None:
        super().__init__(
            path,
            media_type=content_type(path),
            headers={"ETag": etag, "Cache-Control": "no-cache"},
            stat_result=st,
        )
        self.range_header = range_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k != b"range"]
        if self.range_header is not None:
            headers.append((b"range", self.range_header.encode("ascii")))
        await super().__call__({**scope, "headers": headers}, receive, send)


def create_app(
    studio_root: Path,
    *,
    allowed_origins: Iterable[str] = DEFAULT_ALLOWED_ORIGINS,
    loopback_only: bool = True,
) -> ASGIApp:
    """The media server's ASGI app for ``studio_root``.

    ``loopback_only`` (the server is bound to a loopback address) answers only requests whose
    Host header names a loopback host. The endpoints touch the disk, so they are plain
    functions that Starlette runs on its thread pool.
    """
    root = Path(studio_root).resolve()

    def index(request: Request) -> Response:
        """The root page: links to each project folder's storyboard, nothing else."""
        links = [
            f'<li><a href="{html.escape("/".join(quote(p) for p in rel.parts))}">'
            f"{html.escape(rel.parent.name)}</a></li>"
            for rel in _storyboards(root)
        ]
        items = "".join(links) or "<li>No storyboards yet.</li>"
        body = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>VideoGen Studio media</title>"
            "<style>:root{color-scheme:light dark}body{font:16px/1.5 system-ui,sans-serif;"
            "margin:2rem}</style></head><body><h1>Storyboards</h1>"
            f"<ul>{items}</ul></body></html>\n"
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-cache"})

    def media(request: Request) -> Response:
        # the path as sent: an encoded slash or dot must not pass as a separator
        raw_path = request.scope.get("raw_path") or quote(request.scope["path"]).encode()
        try:
            status, path = resolve_request_path(root, raw_path.decode("latin-1"))
        except UnicodeDecodeError:
            return _error(HTTPStatus.BAD_REQUEST)
        if path is None:
            return _error(status)
        try:
            st = os.stat(path)
        except OSError:
            return _error(HTTPStatus.NOT_FOUND)
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        if_none_match = request.headers.get("if-none-match", "")
        if etag in (tag.strip() for tag in if_none_match.split(",")):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
        return _MediaFile(path, st, etag, _range_for_file_response(request.headers.get("range")))

    app = Starlette(routes=[Route("/", index), Route("/{path:path}", media)])
    return _Guard(app, tuple(allowed_origins), loopback_only)


class _Guard:
    """Refuses foreign Host headers and methods other than GET/HEAD/OPTIONS, answers CORS
    preflight, and adds the CORS and safety headers every response carries."""

    def __init__(self, app: ASGIApp, allowed_origins: tuple[str, ...], loopback_only: bool) -> None:
        self.app = app
        self.allowed_origins = allowed_origins
        self.loopback_only = loopback_only

    def _common(self, origin: str | None) -> list[tuple[str, str]]:
        common: list[tuple[str, str]] = []
        if "*" in self.allowed_origins:
            common.append(("Access-Control-Allow-Origin", "*"))
        elif origin and origin in self.allowed_origins:
            common.append(("Access-Control-Allow-Origin", origin))
        return [
            *common,
            ("Vary", "Origin"),
            ("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag"),
            ("X-Content-Type-Options", "nosniff"),
            ("Cross-Origin-Resource-Policy", "cross-origin"),
            ("Referrer-Policy", "no-referrer"),
        ]

    def _host_allowed(self, host: str | None) -> bool:
        if not self.loopback_only or host is None:
            return True  # HTTP/1.0 clients may omit it
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.strip("[]").lower() in _LOOPBACK_HOSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        common = self._common(headers.get("origin"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for key, value in common:
                    out.append(key, value)
            await send(message)

        method = scope["method"]
        response: Response | None = None
        if not self._host_allowed(headers.get("host")):
            response = _error(HTTPStatus.FORBIDDEN)
        elif method == "OPTIONS":
            response = Response(
                status_code=HTTPStatus.NO_CONTENT,
                headers={
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": "Range",
                    "Access-Control-Max-Age": "600",
                    "Allow": ALLOWED_METHODS,
                },
            )
        elif method not in ("GET", "HEAD"):
            response = _error(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": ALLOWED_METHODS})
        if response is not None:
            await response(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)


def _host_of(address: object) -> str:
    host = address[0] if isinstance(address, tuple) and address else ""
    return host.decode() if isinstance(host, bytes) else str(host)


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket; a busy port raises ``OSError`` with the plain reason."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class MediaServer:
    """The media app on a bound socket, served by uvicorn; IPv6 when the host is.

    The socket is bound (and listening) when the server is made, so a busy port raises
    ``OSError`` at once and requests made before ``serve_forever`` starts wait in the backlog.
    """

    def __init__(
        self,
        studio_root: Path,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        allowed_origins: Iterable[str] = DEFAULT_ALLOWED_ORIGINS,
    ) -> None:
        self.studio_root = Path(studio_root).resolve()
        if not self.studio_root.is_dir():
            raise NotADirectoryError(f"studio root {studio_root} is not a directory")
        self.socket = _listening_socket(host, port)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        app = create_app(
            self.studio_root,
            allowed_origins=allowed_origins,
            loopback_only=_host_of(self.server_address) in _LOOPBACK_HOSTS,
        )
        config = uvicorn.Config(
            app,
            log_config=None,  # the studio's logging stays as it is
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = _host_of(self.server_address), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def serve_forever(self) -> None:
        """Serve until ``shutdown`` (or, on the main thread, SIGINT/SIGTERM)."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Ask ``serve_forever`` to return and wait for it (open responses get 2 s)."""
        self._server.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        """Close the listening socket."""
        self.socket.close()

    def __enter__(self) -> MediaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server_close()


def make_server(
    studio_root: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_origins: Iterable[str] = DEFAULT_ALLOWED_ORIGINS,
) -> MediaServer:
    """A bound, not yet running server; ``port=0`` picks a free port (see ``.url``)."""
    return MediaServer(studio_root, host=host, port=port, allowed_origins=allowed_origins)


def serve(
    studio_root: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_origins: Iterable[str] = DEFAULT_ALLOWED_ORIGINS,
) -> None:
    """Serve ``studio_root`` until interrupted (Ctrl-C returns cleanly)."""
    server = make_server(studio_root, host=host, port=port, allowed_origins=allowed_origins)
    log.info("serving %s at %s", server.studio_root, server.url)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def start_in_thread(
    studio_root: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_origins: Iterable[str] = DEFAULT_ALLOWED_ORIGINS,
) -> tuple[str, Callable[[], None]]:
    """Serve ``studio_root`` on a daemon thread; return its base URL and a stop function.

    The stop function shuts the server down, closes its socket and may be called twice.
    """
    server = make_server(studio_root, host=host, port=port, allowed_origins=allowed_origins)
    thread = threading.Thread(
        target=server.serve_forever,
        name=f"videogen-media-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    lock = threading.Lock()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        with lock:
            if stopped:
                return
            stopped = True
        server.shutdown()
        server.server_close()
        thread.join(timeout=_STOP_TIMEOUT_S)

    return server.url, stop
