"""Contract: when the disk refuses a write, `render` fails with an error naming the file it could
not write, the file it would have replaced is left as it was, and no half-written temporary file
is left beside it; the other sentences' files are complete.

A read-only sentence folder (chmod 0o555) is the natural case, but root ignores permission bits,
so it runs only as a normal user; the case that fails for root too puts a directory where the
clip should go, so the final rename of the finished temporary file fails.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import dagster as dg
import pytest

from videogen.operations import create_project, render
from videogen_resources.settings import BackendSettings

SCRIPT = "# One\nThe tide comes in twice a day.\nThe moon pulls the sea.\n"
pytestmark = pytest.mark.slow  # each test renders until the disk error

SETTINGS = BackendSettings(clip_preset="ultrafast")
VICTIM = "tides.s0002"


def _render_fails(root: Path, instance: dg.DagsterInstance) -> str:
    """Render, expect it to fail, and return the failed step's error text."""
    with pytest.raises(Exception) as failed:
        render(root, "tides", instance=instance, settings=SETTINGS)
    chain = []
    exc: BaseException | None = failed.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or getattr(exc, "user_exception", None)
        if exc is not None and str(exc) in chain:
            break
    run = instance.get_runs(limit=1)[0]
    assert run.status == dg.DagsterRunStatus.FAILURE
    failures = [
        str(e.dagster_event.step_failure_data.error)  # type: ignore[union-attr]
        for e in instance.all_logs(run.run_id)
        if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_FAILURE"
    ]
    assert failures, "the run failed without a step failure"
    return "\n".join([*chain, failures[-1]])


def _project(root: Path, tmp_path: Path, instance: dg.DagsterInstance) -> Path:
    script = tmp_path / "script.md"
    script.write_text(SCRIPT, encoding="utf-8")
    folder, _ = create_project(
        root, title="Tides", name="tides", script_file=script, instance=instance
    )
    return folder


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_directory_where_the_clip_goes_fails_naming_it_and_leaves_no_temp_file(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    folder = _project(studio_root, tmp_path, instance)
    victim = folder / "sentences" / VICTIM
    (victim / "clip.mp4").mkdir(parents=True)
    (victim / "clip.mp4" / "keep.txt").write_text("mine", encoding="utf-8")

    error = _render_fails(studio_root, instance)
    assert str(victim / "clip.mp4") in error
    assert _hidden(victim) == []
    assert (victim / "clip.mp4" / "keep.txt").read_text(encoding="utf-8") == "mine"
    for name in ("narration.wav", "shot.json", "keyframe.png"):
        assert (victim / name).is_file() and (victim / name).stat().st_size > 0, name
    other = folder / "sentences" / "tides.s0001"
    assert (other / "clip.mp4").is_file() and _hidden(other) == []
    assert not (folder / "rough_cut.mp4").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_sentence_folder_fails_naming_it_and_leaves_no_temp_file(
    studio_root: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    folder = _project(studio_root, tmp_path, instance)
    victim = folder / "sentences" / VICTIM
    victim.mkdir(parents=True)
    victim.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH)
    try:
        error = _render_fails(studio_root, instance)
    finally:
        victim.chmod(0o755)
    assert str(victim) in error
    assert list(victim.iterdir()) == []
