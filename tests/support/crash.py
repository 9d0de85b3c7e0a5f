"""Helpers for tests that run the studio in other processes and inspect what it left behind.

``studio_env`` is the environment of a `videogen` subprocess on a temporary studio and Dagster
home; ``temp_leftovers`` lists the temporary files of interrupted atomic writes
(``videogen_domain.atomic``) and of other half-finished writes under a folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT_8 = """# Fire
Deep below the crust, rock melts into magma.
It rises slowly through cracks.
> camera: tilt-up | motion: 0.6
Gas bubbles grow as the pressure drops.

## The eruption
Lava pours down the slopes.
> camera: pan-left
Ash climbs high into the sky.
Lightning flickers inside the cloud.

## After
Rain cools the black rock.
Ferns return within a year.
"""


def studio_env(root: Path, dagster_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `videogen` subprocess: this studio, this instance, fast clips."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"COMFYUI_URL", "CHATTERBOX_URL", "DEEPSEEK_API_KEY", "LLM_BASE_URL", "VIDEOGEN_TTS"}
    }
    env.update(
        DAGSTER_HOME=str(dagster_home),
        VIDEOGEN_HOME=str(root),
        VIDEOGEN_CLIP_PRESET="ultrafast",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


def videogen_cmd(root: Path, *args: str) -> list[str]:
    """The `videogen` command line run with this interpreter."""
    return [sys.executable, "-m", "videogen.cli", "--home", str(root), *args]


def temp_leftovers(folder: Path) -> list[Path]:
    """Hidden files and folders under ``folder``: the studio writes every file under a hidden
    temporary name first (``.<name>.<random>``), so any that remain are unfinished writes.
    An export's lock file (``exports/.<project>.lock``) is the one hidden file that belongs."""
    return sorted(
        p
        for p in folder.rglob(".*")
        if not (p.name.endswith(".lock") and p.parent.name == "exports")
    )


def sentence_rows(root: Path, project: str) -> tuple[list[tuple[str, int]], tuple[int, int], int]:
    """What the studio database holds for a project: (sentence id, rows with that id) per id,
    (distinct texts, rows) and the number of generation jobs pointing at no sentence."""
    import sqlite3

    from videogen_domain.paths import database_path

    with sqlite3.connect(database_path(root)) as con:
        rows = con.execute(
            "SELECT id, COUNT(*) FROM sentences WHERE project_id = ? GROUP BY id", (project,)
        ).fetchall()
        texts = con.execute(
            "SELECT COUNT(DISTINCT text), COUNT(*) FROM sentences WHERE project_id = ?",
            (project,),
        ).fetchone()
        orphans = con.execute(
            "SELECT COUNT(*) FROM generation_jobs WHERE sentence_id NOT IN "
            "(SELECT id FROM sentences)"
        ).fetchone()[0]
    return [(r[0], r[1]) for r in rows], (texts[0], texts[1]), orphans
