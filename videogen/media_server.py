"""A read-only HTTP server for the studio's media, bound to 127.0.0.1 by default.

It lets the Dagster UI show keyframes and contact sheets inline and lets a browser open a
project's storyboard over http. It serves media (images, audio, video), subtitles and
``storyboard.html`` files under the studio root and nothing else (never a script.md,
project.yaml, shot.json or a creator's notes): no directory listings (the root page lists
projects that have a storyboard), no paths with ``..``, empty or hidden segments, nothing a
symlink leads outside the root, and only GET and HEAD (plus OPTIONS for CORS preflight).
Byte ranges are supported so ``<video>`` and ``<audio>`` can seek; responses carry an ETag
and ``Cache-Control: no-cache`` so a re-rendered keyframe shows up on the next look.

When bound to a loopback address it only answers requests whose Host header names a
loopback host, which keeps DNS-rebinding pages from reading the studio.
"""

from __future__ import annotations

import contextlib
import email.utils
import html
import logging
import mimetypes
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterable
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from videogen_domain.paths import media_url, projects_dir

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_ALLOWED_ORIGINS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MediaRequestHandler",
    "MediaServer",
    "content_type",
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
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")  # fullmatch; ASCII digits only
_MAX_DIGITS = 18  # more digits than any file size: read as "past the end", never parsed
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
_CHUNK = 256 * 1024
# Never served: the studio database and its journals.
_PRIVATE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".sqlite3")


def _host_of(address: object) -> str:
    host = address[0] if isinstance(address, tuple) and address else ""
    return host.decode() if isinstance(host, bytes) else str(host)


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
    not exist.
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


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """``(first, last)`` inclusive; ``None`` to ignore the header; ``False`` if unsatisfiable."""
    m = _RANGE.fullmatch(header.strip())
    if not m:
        return None  # multiple ranges or another unit: answer with the whole file
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None

    def number(digits: str) -> int:
        digits = digits.lstrip("0") or "0"
        return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS

    if not first_s:  # suffix: the last N bytes
        n = number(last_s)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    first = number(first_s)
    last = number(last_s) if last_s else size - 1
    if first >= size or last < first:
        return False
    return first, min(last, size - 1)


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


class MediaRequestHandler(BaseHTTPRequestHandler):
    """Serves files under ``root``; see the module docstring for what it refuses."""

    server_version = "VideoGenMedia/1"
    protocol_version = "HTTP/1.1"

    def __init__(
        self,
        *args: object,
        root: Path,
        allowed_origins: tuple[str, ...],
        **kwargs: object,
    ) -> None:
        self.root = root
        self.allowed_origins = allowed_origins
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    # -- plumbing ----------------------------------------------------------------------------

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if "*" in self.allowed_origins:
            self.send_header("Access-Control-Allow-Origin", "*")
        elif origin and origin in self.allowed_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
        self.send_header("Vary", "Origin")
        self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag")

    def _common(self) -> None:
        self._cors()
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
        self.send_header("Referrer-Policy", "no-referrer")

    def _error(self, status: HTTPStatus, extra: Iterable[tuple[str, str]] = ()) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self._common()
        for key, value in extra:
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host_allowed(self) -> bool:
        if _host_of(self.server.server_address) not in _LOOPBACK_HOSTS:
            return True
        host = self.headers.get("Host")
        if host is None:
            return True  # HTTP/1.0 clients may omit it
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        return name in _LOOPBACK_HOSTS

    # -- methods -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_OPTIONS(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self._common()
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Range")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Allow", "GET, HEAD, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _refuse_method(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, HEAD, OPTIONS")])

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, head: bool) -> None:
        if not self._host_allowed():
            self._error(HTTPStatus.FORBIDDEN)
            return
        if self.path.split("?", 1)[0] == "/":
            self._index(head)
            return
        try:
            status, path = resolve_request_path(self.root, self.path)
        except UnicodeDecodeError:
            status, path = HTTPStatus.BAD_REQUEST, None
        if path is None:
            self._error(status)
            return
        try:
            fh = open(path, "rb")
        except OSError:
            self._error(HTTPStatus.NOT_FOUND)
            return
        with fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            etag = f'"{st.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            if etag in [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]:
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self._common()
                self.send_header("ETag", etag)
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                return
            first, last = 0, size - 1
            status = HTTPStatus.OK
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if range_header and (if_range is None or if_range in (etag, modified)):
                parsed = _parse_range(range_header, size)
                if parsed is False:
                    self._error(
                        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                        [("Content-Range", f"bytes */{size}"), ("Accept-Ranges", "bytes")],
                    )
                    return
                if isinstance(parsed, tuple):
                    first, last = parsed
                    status = HTTPStatus.PARTIAL_CONTENT
            length = max(0, last - first + 1)
            self.send_response(status)
            self._common()
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.send_header("Cache-Control", "no-cache")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            if head or length == 0:
                return
            fh.seek(first)
            remaining = length
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while remaining > 0:
                    chunk = fh.read(min(_CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    def _index(self, head: bool) -> None:
        """The root page: links to each project folder's storyboard, nothing else."""
        links: list[str] = []
        for rel in _storyboards(self.root):
            href = "/".join(quote(part) for part in rel.parts)
            name = rel.parent.name
            links.append(f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>')
        items = "".join(links) or "<li>No storyboards yet.</li>"
        body = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>VideoGen Studio media</title>"
            "<style>:root{color-scheme:light dark}body{font:16px/1.5 system-ui,sans-serif;"
            "margin:2rem}</style></head><body><h1>Storyboards</h1>"
            f"<ul>{items}</ul></body></html>\n"
        ).encode()
        self.send_response(HTTPStatus.OK)
        self._common()
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if not head:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)


class MediaServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that serves one studio root; IPv6 when the host is."""

    daemon_threads = True
    allow_reuse_address = True

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
        if ":" in host:
            self.address_family = socket.AF_INET6
        handler = partial(
            MediaRequestHandler,
            root=self.studio_root,
            allowed_origins=tuple(allowed_origins),
        )
        super().__init__((host, port), handler)

    @property
    def url(self) -> str:
        host = _host_of(self.server_address)
        port = self.server_address[1] if isinstance(self.server_address, tuple) else 0
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"


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
    with server:
        with contextlib.suppress(KeyboardInterrupt):
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
        kwargs={"poll_interval": 0.05},
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
        thread.join(timeout=5)

    return server.url, stop
