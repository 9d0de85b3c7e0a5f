"""The bundled sample project that `videogen demo` renders."""

from __future__ import annotations

from pathlib import Path

DEMO_SCRIPT = Path(__file__).with_name("how_volcanoes_work.md")
DEMO_TITLE = "How volcanoes work"
DEMO_NAME = "how_volcanoes_work"
