"""Contract: `videogen render` shows honest progress.

On a terminal one status block is redrawn in place (rich Live: cursor-up and erase-line codes,
not a new line per second); elsewhere exactly one line per finished asset. The block shows the
running generation's sampler step (``step n/m``, from ComfyUI's WebSocket ``progress``
messages, which reach the run's log rate-limited and naming the sentence) and a per-kind ETA
from the measured seconds per asset. Checked against a real render (real Dagster instance,
the ComfyUI test server) and on fixed snapshots.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import dagster as dg
import pytest

from tests.support.servers.comfyui import SHARED, running_comfyui
from videogen.operations import create_project, render
from videogen.progress import (
    LineDisplay,
    LiveDisplay,
    RenderSnapshot,
    Running,
    console_progress,
    status_lines,
)
from videogen_resources.settings import BackendSettings
from videogen_resources.workflows import newer_node_schemas

KINDS = {"narration": 2, "shot": 2, "keyframe": 2, "clip": 2, "rough_cut": 1}


def _snapshot(**kw: object) -> RenderSnapshot:
    base: dict[str, object] = {"totals": dict(KINDS), "done": {}, "elapsed": 75.0}
    base.update(kw)
    return RenderSnapshot(**base)  # type: ignore[arg-type]


def test_status_block_shows_step_and_eta_from_measured_rates() -> None:
    snap = _snapshot(
        done={"narration": 2, "shot": 2, "keyframe": 1},
        running={"keyframe": Running("keyframe", since=0.0, step=3, steps=6)},
        rates={"keyframe": 10.0},
    )
    lines = status_lines(snap)
    assert lines[0] == "narration [##########] 2/2  done"
    assert lines[2] == "keyframe  [#####     ] 1/2  step 3/6  ETA 5s"  # half of one 10 s asset
    assert lines[3] == "clip      [          ] 0/2"  # not started: no rate, no guess
    assert lines[-1] == "elapsed 1m15s"
    # before any keyframe finished there is no rate: the ETA says so instead of inventing one
    first = _snapshot(running={"keyframe": Running("keyframe", since=0.0, step=1, steps=6)})
    assert "step 1/6  ETA ?" in status_lines(first)[2]


def test_live_display_redraws_one_block_in_place() -> None:
    out = io.StringIO()
    display = LiveDisplay(out, force_terminal=True)
    for n in range(1, 7):
        display(
            _snapshot(
                done={"narration": 2, "shot": 2},
                running={"keyframe": Running("keyframe", since=0.0, step=n, steps=6)},
            )
        )
    display(_snapshot(done=dict(KINDS), final=True))
    text = out.getvalue()
    assert "\x1b[1A" in text and "\x1b[2K" in text  # cursor up + erase line: redrawn in place
    assert all(f"step {n}/6" in text for n in range(1, 7))
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert plain.rstrip().endswith("elapsed 1m15s")


def test_not_a_terminal_means_lines() -> None:
    assert isinstance(console_progress(), LineDisplay)  # pytest captures: not a terminal


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "object_info.json").is_file(),
    reason=f"recorded ComfyUI responses not found in {SHARED}",
)
def test_render_progress_lines_steps_and_rates(
    studio_root: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    script = tmp_path / "s.md"
    script.write_text("# Fire\nMagma rises.\nLava flows.\n", encoding="utf-8")
    create_project(studio_root, title="Prog", name="prog", script_file=script, instance=instance)
    out = io.StringIO()
    lines = LineDisplay(out)
    snaps: list[RenderSnapshot] = []

    def record(snap: RenderSnapshot) -> None:
        snaps.append(snap)
        lines(snap)

    with running_comfyui(
        job_seconds=2.5, sampler_steps=10, extra_nodes=newer_node_schemas(), version="0.7.0"
    ) as comfy:
        render(
            studio_root,
            "prog",
            instance=instance,
            settings=BackendSettings(comfyui_urls=[comfy.url]),
            progress=record,
        )
    printed = out.getvalue().splitlines()
    done_lines = [x for x in printed if " done (" in x]
    # one line per finished asset: 4 kinds x 2 sentences + 4 project assets, no repeats
    assert len(done_lines) == len(set(done_lines)) == 12, printed
    assert sum(x.startswith("keyframe prog.s000") for x in done_lines) == 2
    assert printed[-1].startswith("render: 12/12 assets in ")
    assert snaps[-1].final and snaps[-1].done["clip"] == 2
    # the summary counts the render's time (its runs), not the last poll's
    assert snaps[-1].elapsed >= 4 * 2.5  # 2 keyframes + 2 clips of 2.5 s each, at least
    # the running keyframe's sampler step was seen while it ran, with its sentence
    seen = [s.running["keyframe"] for s in snaps if "keyframe" in s.running]
    steps = [r for r in seen if r.step is not None]
    assert steps and all(r.steps == 10 for r in steps)
    assert {r.partition for r in steps} <= {"prog.s0001", "prog.s0002"}
    # after the first keyframe, the second one's ETA comes from the measured rate
    assert any(
        s.done.get("keyframe") == 1 and s.rates.get("keyframe") and s.eta("keyframe") is not None
        for s in snaps
    )
    # the run's own log (what the Dagster UI shows) has the step lines, rate-limited
    logs = [
        e.user_message
        for run in instance.get_runs()
        for e in instance.all_logs(run.run_id)
        if e.user_message and re.search(r"step \d+/10", e.user_message)
    ]
    per_sentence = {pk: [x for x in logs if f"[{pk}]" in x] for pk in ("prog.s0001", "prog.s0002")}
    for pk, found in per_sentence.items():
        # keyframe and clip: the first and last step each, and at most one per 2 s between
        assert 4 <= len(found) <= 8, (pk, found)
        assert any("step 1/10" in x for x in found) and any("step 10/10" in x for x in found)
