"""Errors about a creator's input files: each names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input in a creator's file (project.yaml, script.md, a character, a workflow...)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.message = message
        where = ""
        if self.file:
            where = self.file
            if line is not None:
                where += f":{line}"
            where += ": "
        what = f"{field}: " if field else ""
        super().__init__(f"{where}{what}{message}")
