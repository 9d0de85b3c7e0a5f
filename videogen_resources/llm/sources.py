"""Sources for grounding a script: local files and web pages read as plain text.

The API key is never sent to these addresses: pages are fetched with a client of their own.
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from videogen_domain.errors import InputError
from videogen_resources.errors import ServiceError
from videogen_resources.http import RETRY_STATUSES, HttpPolicy, HttpService


class Source(BaseModel):
    """A text the creator gave for grounding: a local file or a web page."""

    ref: str  # the path or URL as given
    kind: Literal["file", "url"]
    title: str = ""
    text: str = ""
    chars: int = 0  # length of the full text before truncation
    truncated: bool = False


class _TextExtractor(html.parser.HTMLParser):
    """Crude readable-text extraction: drops script/style, keeps the title and block breaks."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "section",
            "article",
            "header",
            "footer",
            "blockquote",
            "pre",
            "table",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def html_to_text(markup: str) -> tuple[str, str]:
    """(title, readable text) of an HTML page."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return " ".join(parser.title.split()), parser.text()


def _decode(data: bytes, content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type, re.I)
    encoding = match.group(1) if match else "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


@dataclass
class SourceReader:
    """Reads sources, each capped at ``max_bytes`` read and ``max_chars`` kept."""

    max_bytes: int = 2_000_000
    max_chars: int = 20_000
    connect_s: float = 10.0
    read_s: float = 20.0
    _web: HttpService | None = field(default=None, init=False, repr=False)

    def gather(self, sources: Sequence[str], *, base_dir: Path | None = None) -> list[Source]:
        """Read local files and fetch http(s) pages given as sources, as plain text."""
        out: list[Source] = []
        try:
            for ref in sources:
                ref = ref.strip()
                if not ref:
                    continue
                if re.match(r"^https?://", ref, re.I):
                    out.append(self._fetch(ref))
                else:
                    out.append(self._read(ref, base_dir))
        finally:
            if self._web is not None:
                self._web.close()
                self._web = None
        return out

    def _finish(
        self, ref: str, kind: Literal["file", "url"], raw: str, content_type: str, truncated: bool
    ) -> Source:
        title = ""
        text = raw
        if "html" in content_type or re.match(r"\s*(<!doctype html|<html)", raw[:200], re.I):
            title, text = html_to_text(raw)
        full = len(text)
        keep = text[: self.max_chars]
        return Source(
            ref=ref,
            kind=kind,
            title=title,
            text=keep,
            chars=full,
            truncated=truncated or full > len(keep),
        )

    def _read(self, ref: str, base_dir: Path | None) -> Source:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InputError("source file not found", file=path, field="sources")
        with path.open("rb") as fh:
            data = fh.read(self.max_bytes + 1)
        truncated = len(data) > self.max_bytes
        ctype = "text/html" if path.suffix.lower() in {".html", ".htm"} else "text/plain"
        return self._finish(ref, "file", _decode(data[: self.max_bytes], ""), ctype, truncated)

    def _fetch(self, url: str) -> Source:
        if self._web is None:
            self._web = HttpService(
                "web",
                policy=HttpPolicy(
                    connect_s=self.connect_s,
                    read_s=self.read_s,
                    max_retries=0,
                    retry_statuses=RETRY_STATUSES | {500},
                ),
                headers={"User-Agent": "videogen-studio (source reader)"},
                follow_redirects=True,
            )
        web = self._web
        with web.stream("GET", url) as response:
            if response.status_code >= 400:
                raise ServiceError(
                    "web",
                    f"could not fetch source {url}",
                    status=response.status_code,
                    retryable=response.status_code in web.policy.retry_statuses,
                )
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_bytes:
                    truncated = True
                    break
            ctype = response.headers.get("content-type", "")
        data = b"".join(chunks)[: self.max_bytes]
        if ctype and not re.search(r"text/|json|xml|markdown", ctype):
            raise ServiceError("web", f"source {url} is {ctype}, not text")
        return self._finish(url, "url", _decode(data, ctype), ctype, truncated)
