"""The README's "From the Dagster CLI" recipes, run as written on a rendered project.

Pins: the section's shell blocks are run verbatim, one subprocess per command, from the
repository root, after the section's own setup line (evaluated in a temporary folder, so
``$PWD/studio`` is a temporary studio holding the sample project ``how_volcanoes_work``, made
and rendered with `videogen new` / `videogen render`). With no flags beyond those written,
`dg` and `dagster` load the studio's code location from pyproject.toml and use the studio's
instance, and each recipe has its effect on the files and in the instance:

- listing names the project's eleven assets (`dagster asset list`: the nine it can
  materialize, not the observed `sentence` and `direction`);
- regenerating one sentence's chain makes its narration, shot, keyframe and clip again in one
  run (its files rewritten) and touches no other sentence; `dagster asset materialize -m ...`
  regenerates one partition;
- a range backfill makes the range's narrations in one run, each with its own data version
  (its file's hash), and nothing outside the range;
- rebuilding the outputs makes rough cut, subtitles, storyboard and export in one run;
- the staleness view calls "stale" exactly the clips whose narration changed since they were
  made (read from the clips' recorded input data versions);
- the project's automation sensor is stopped and started (its state in the instance).

Dagster refuses to wipe one partition's materializations on the studio's instance (so the
README explains how to start a sentence over instead).

Also: `dg check defs` passes; a render's runs carry a job name (never
``__ephemeral_asset_job__``). Each recipe's wall time is written to
``test-artifacts/dagster_cli_recipes.txt``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from tests.support.browser import artifact_path
from tests.support.samples import SMALL_SCRIPT
from videogen_assets.context import PER_PROJECT, file_digest
from videogen_assets.dagster_internals import DATA_VERSION_TAG, InstigatorStatus, InstigatorType
from videogen_assets.sentence_assets import PER_SENTENCE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROJECT = "how_volcanoes_work"
IDS = [f"{PROJECT}.s000{n}" for n in (1, 2, 3)]
ALL_KINDS = ("script", "sentence", "direction", *PER_SENTENCE, *PER_PROJECT)
FILES = {"narration": "narration.wav", "keyframe": "keyframe.png", "clip": "clip.mp4"}
SERVICE_VARS = ("COMFYUI_URL", "CHATTERBOX_URL", "DEEPSEEK_API_KEY", "LLM_BASE_URL", "VIDEOGEN_TTS")
POINTER_VARS = ("DAGSTER_MODULE_NAME", "DAGSTER_PYTHON_FILE", "DAGSTER_PACKAGE_NAME")
COMMAND_TIMEOUT_S = 600


def readme_recipes() -> tuple[str, list[list[str]]]:
    """The section's setup line and, per shell block after it, its commands."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## From the Dagster CLI")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"```bash\n(.*?)```", text[start:end], flags=re.DOTALL)
    commands = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        commands.append([ln.strip() for ln in joined.splitlines() if ln.strip()])
    setup = commands[0]
    assert len(setup) == 1 and setup[0].startswith("export "), setup
    return setup[0], commands[1:]


SETUP, RECIPES = readme_recipes()


@dataclass
class Studio:
    base: Path
    env: dict[str, str]
    times: dict[str, float] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.base / "studio"

    @property
    def home(self) -> Path:
        return self.root / ".dagster"

    def folder(self, sid: str | None = None) -> Path:
        project = self.root / "projects" / PROJECT
        return project if sid is None else project / "sentences" / sid

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run one command as written, after the README's setup line, from the repo root."""
        script = f"cd {shlex.quote(str(self.base))} && {SETUP} && cd {shlex.quote(str(REPO))}"
        done = subprocess.run(
            ["bash", "-c", f"{script} && {command}"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done

    def recipe(self, name: str, commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        t0 = time.perf_counter()
        out = [self.sh(c) for c in commands]
        self.times[name] = time.perf_counter() - t0
        return out

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


def latest(
    instance: dg.DagsterInstance, kind: str, sid: str | None = None
) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey([PROJECT, kind]), asset_partitions=[sid] if sid else None
        ),
        limit=1,
    ).records
    return records[0] if records else None


def snapshot(studio: Studio) -> dict[tuple[str, str | None], int | None]:
    """The storage id of the latest materialization of every asset (per sentence)."""
    inst = studio.instance()
    try:
        out: dict[tuple[str, str | None], int | None] = {}
        for kind in PER_SENTENCE:
            for sid in IDS:
                rec = latest(inst, kind, sid)
                out[(kind, sid)] = rec.storage_id if rec else None
        for kind in PER_PROJECT:
            rec = latest(inst, kind)
            out[(kind, None)] = rec.storage_id if rec else None
        return out
    finally:
        inst.dispose()


def run_ids(studio: Studio, keys: list[tuple[str, str | None]]) -> set[str]:
    inst = studio.instance()
    try:
        found = set()
        for kind, sid in keys:
            rec = latest(inst, kind, sid)
            assert rec is not None, (kind, sid)
            found.add(rec.run_id)
        return found
    finally:
        inst.dispose()


def mtimes(studio: Studio) -> dict[str, int]:
    return {
        str(p.relative_to(studio.root)): p.stat().st_mtime_ns
        for p in studio.folder().rglob("*")
        if p.is_file()
    }


def changed(before: dict, after: dict) -> set:  # type: ignore[type-arg]
    return {k for k in after if after.get(k) != before.get(k)}


def recipe(first_word: str, contains: str) -> list[str]:
    """The README block whose first command starts with ``first_word`` and holds ``contains``."""
    found = [block for block in RECIPES if block[0].startswith(first_word) and contains in block[0]]
    assert len(found) == 1, (first_word, contains, RECIPES)
    return found[0]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    base = tmp_path_factory.mktemp("dagster_cli")
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS + POINTER_VARS}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        VIDEOGEN_CLIP_PRESET="ultrafast",
        COLUMNS="250",  # dg prints tables as wide as the terminal
    )
    env.pop("VIDEOGEN_HOME", None)
    env.pop("DAGSTER_HOME", None)
    s = Studio(base, env)
    (base / "script.md").write_text(SMALL_SCRIPT, encoding="utf-8")
    script = shlex.quote(str(base / "script.md"))
    s.sh(f'videogen new "How volcanoes work" --script {script}')
    s.sh(f"videogen render {PROJECT}")
    assert all((s.folder(sid) / "clip.mp4").exists() for sid in IDS)
    yield s
    lines = [f"{name}: {secs:.1f} s" for name, secs in s.times.items()]
    artifact_path("dagster_cli_recipes.txt").write_text("\n".join(lines) + "\n")


def test_readme_has_every_recipe() -> None:
    assert SETUP == "export VIDEOGEN_HOME=$PWD/studio DAGSTER_HOME=$PWD/studio/.dagster"
    assert len(RECIPES) == 7, RECIPES


def test_render_runs_are_named(studio: Studio) -> None:
    inst = studio.instance()
    try:
        names = {r.job_name for r in inst.get_runs()}
    finally:
        inst.dispose()
    assert names == {f"render_{PROJECT}_{k}" for k in (*PER_SENTENCE, "outputs")}


def test_dg_check_defs(studio: Studio) -> None:
    done = studio.sh("dg check defs")
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_list_a_projects_assets(studio: Studio) -> None:
    dg_out, dagster_out = studio.recipe("list assets", recipe("dg list defs", PROJECT))
    expected = {f"{PROJECT}/{k}" for k in ALL_KINDS}
    for asset_key in expected:
        assert asset_key in dg_out.stdout
    observed = {f"{PROJECT}/sentence", f"{PROJECT}/direction"}  # dagster lists what it can make
    assert set(dagster_out.stdout.split()) == expected - observed


def test_regenerate_one_sentences_chain(studio: Studio) -> None:
    chain = recipe("dg launch --partition", f"{PROJECT}.s0002")
    before, files = snapshot(studio), mtimes(studio)
    studio.recipe("regenerate one sentence's chain", chain)
    after = snapshot(studio)
    assert changed(before, after) == {(k, IDS[1]) for k in PER_SENTENCE}
    assert len(run_ids(studio, [(k, IDS[1]) for k in PER_SENTENCE])) == 1
    rewritten = changed(files, mtimes(studio))
    prefix = f"projects/{PROJECT}/sentences/"
    assert {f"{prefix}{IDS[1]}/{f}" for f in FILES.values()} <= rewritten
    assert not any(p.startswith(prefix) and IDS[1] not in p for p in rewritten)


def test_materialize_one_partition_with_the_dagster_cli(studio: Studio) -> None:
    commands = recipe("dagster asset materialize", "narration")
    before, files = snapshot(studio), mtimes(studio)
    studio.recipe("dagster asset materialize one partition", commands)
    assert changed(before, snapshot(studio)) == {("narration", IDS[2])}
    wav = f"projects/{PROJECT}/sentences/{IDS[2]}/narration.wav"
    assert wav in changed(files, mtimes(studio))


def test_backfill_a_range_as_one_run(studio: Studio) -> None:
    commands = recipe("dg launch --assets", "--partition-range")
    before = snapshot(studio)
    studio.recipe("backfill a range as one run", commands)
    assert changed(before, snapshot(studio)) == {("narration", IDS[0]), ("narration", IDS[1])}
    (run_id,) = run_ids(studio, [("narration", IDS[0]), ("narration", IDS[1])])
    inst = studio.instance()
    try:
        run = inst.get_run_by_id(run_id)
        assert run is not None
        assert run.tags["dagster/asset_partition_range_start"] == IDS[0]
        assert run.tags["dagster/asset_partition_range_end"] == IDS[1]
        for sid in IDS[:2]:
            rec = latest(inst, "narration", sid)
            assert rec is not None and rec.asset_materialization is not None
            version = (rec.asset_materialization.tags or {}).get(DATA_VERSION_TAG)
            assert version == file_digest(studio.folder(sid) / "narration.wav")
    finally:
        inst.dispose()


def test_rebuild_a_projects_outputs(studio: Studio) -> None:
    commands = recipe("dg launch --assets", "rough_cut")
    before, files = snapshot(studio), mtimes(studio)
    studio.recipe("rebuild the outputs", commands)
    assert changed(before, snapshot(studio)) == {(k, None) for k in PER_PROJECT}
    assert len(run_ids(studio, [(k, None) for k in PER_PROJECT])) == 1
    rewritten = changed(files, mtimes(studio))
    for name in ("rough_cut.mp4", "subtitles.srt", "storyboard.html"):
        assert f"projects/{PROJECT}/{name}" in rewritten
    assert (studio.root / "exports" / PROJECT / "metadata.json").exists()


def test_see_what_is_stale(studio: Studio) -> None:
    # A real edit first: the first sentence's words change in script.md (status syncs it).
    script = studio.folder() / "script.md"
    text = script.read_text(encoding="utf-8")
    assert "glows red" in text
    script.write_text(text.replace("glows red", "glows deep red"), encoding="utf-8")
    (done,) = studio.recipe("see what is stale", recipe("videogen status", PROJECT))
    inst = studio.instance()
    try:
        expected = {}
        for sid in IDS:
            clip = latest(inst, "clip", sid)
            narration = latest(inst, "narration", sid)
            assert clip is not None and narration is not None
            assert clip.asset_materialization and narration.asset_materialization
            made_from = (clip.asset_materialization.tags or {}).get(
                f"dagster/input_data_version/{PROJECT}/narration"
            )
            now = (narration.asset_materialization.tags or {}).get(DATA_VERSION_TAG)
            expected[sid] = "stale" if made_from != now else "done"
    finally:
        inst.dispose()
    shown = dict(re.findall(rf"({re.escape(PROJECT)}\.s\d+)\s.*?clip:(\w+)", done.stdout))
    assert shown == expected, done.stdout
    # The narrations remade by the recipes above came out identical (embedded narration is
    # deterministic) and every clip recorded the version it was made from: no clip is stale.
    # The edited sentence's narration and shot are.
    narrations = dict(re.findall(rf"({re.escape(PROJECT)}\.s\d+)\s.*?narration:(\w+)", done.stdout))
    shots = dict(re.findall(rf"({re.escape(PROJECT)}\.s\d+)\s.*?shot:(\w+)", done.stdout))
    assert narrations == {sid: "stale" if sid == IDS[0] else "done" for sid in IDS}, done.stdout
    assert shots[IDS[0]] == "stale", done.stdout


def test_turn_automation_off_and_on(studio: Studio) -> None:
    stop_cmd, start_cmd = recipe("dagster sensor stop", PROJECT)
    name = f"automation_{PROJECT}"

    def status() -> InstigatorStatus | None:
        inst = studio.instance()
        try:
            states = inst.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            return next((s.status for s in states if s.name == name), None)
        finally:
            inst.dispose()

    t0 = time.perf_counter()
    studio.sh(stop_cmd)
    assert status() == InstigatorStatus.STOPPED
    studio.sh(start_cmd)
    assert status() == InstigatorStatus.RUNNING
    studio.times["automation off and on"] = time.perf_counter() - t0


def test_one_partition_cannot_be_wiped(studio: Studio) -> None:
    """Why the README has no wipe recipe: Dagster refuses to wipe one partition's records."""
    inst = studio.instance()
    try:
        with pytest.raises(NotImplementedError, match="Partitioned asset wipe is not supported"):
            inst.wipe_asset_partitions(dg.AssetKey([PROJECT, "clip"]), [IDS[1]])
        assert set(inst.get_materialized_partitions(dg.AssetKey([PROJECT, "clip"]))) == set(IDS)
    finally:
        inst.dispose()
