"""Declarative automation as the daemon evaluates it: after a script edit exactly the affected
sentence's chain is requested, in one evaluation (so the daemon runs it as one run), then the
project outputs; an unchanged data version stops the cascade (the steps below it regenerate
nothing and record nothing); a code version change requests every partition; a project with
`automation: false` is never requested."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, render, sync
from videogen_assets.batching import AUTOMATION_RUN_TAG
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_assets.partitions import partitions_name
from videogen_resources.settings import BackendSettings

pytestmark = pytest.mark.slow  # each test renders a project and evaluates automation (~20 s)

SETTINGS = BackendSettings(clip_preset="ultrafast")
SENTENCE_KINDS = {"narration", "shot", "keyframe", "clip"}
IDS = ["alpha.s0001", "alpha.s0002", "alpha.s0003"]
Requests = dict[str, set[str | None]]


@dataclass
class World:
    root: Path
    instance: dg.DagsterInstance
    defs: dg.Definitions
    cursor: object

    def script(self, project: str) -> Path:
        return self.root / "projects" / project / "script.md"

    def edit(self, project: str, old: str, new: str) -> None:
        path = self.script(project)
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new), encoding="utf-8")
        sync(self.root, project, instance=self.instance)

    def tick(self, defs: dg.Definitions | None = None) -> Requests:
        """One evaluation of every automation condition, carrying the cursor like the daemon."""
        defs = defs or self.defs
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=self.instance,
            cursor=self.cursor,  # type: ignore[arg-type]
        )
        self.cursor = result.cursor
        out: Requests = {}
        for k in defs.resolve_asset_graph().get_all_asset_keys():
            parts = result.get_requested_partitions(k)
            if parts:
                out[k.to_user_string()] = set(parts)
        return out

    def run(self, requests: Requests) -> None:
        """Materialize what was requested as the automation sensor groups it: one run per
        partition holding every asset requested for it (and one for the project outputs)."""
        assets = [
            a
            for a in self.defs.assets or []
            if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))
        ]
        resources = dict(self.defs.resources or {})
        by_partition: dict[str | None, list[str]] = {}
        for name, parts in requests.items():
            for part in parts:
                by_partition.setdefault(part, []).append(name)
        for part, names in sorted(by_partition.items(), key=lambda kv: str(kv[0])):
            result = dg.materialize(
                assets,
                instance=self.instance,
                resources=resources,
                selection=[dg.AssetKey.from_user_string(n) for n in sorted(names)],
                partition_key=part,
                tags={AUTOMATION_RUN_TAG: "true"},  # as on the runs the sensor requests
            )
            assert result.success, names

    def latest(self, kind: str, partition: str) -> int | None:
        """The storage id of the latest materialization of one sentence asset."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key("alpha", kind), asset_partitions=[partition]),
            limit=1,
        ).records
        return records[0].storage_id if records else None

    def settle(self, limit: int = 8) -> list[Requests]:
        """Tick and run until nothing is requested; the requests of each tick."""
        ticks: list[Requests] = []
        for _ in range(limit):
            requests = self.tick()
            if not requests:
                return ticks
            ticks.append(requests)
            self.run(requests)
        raise AssertionError(f"automation did not settle: {ticks}")


@pytest.fixture(scope="module")
def rendered_studio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One render shared by the module; each test works on its own copy of it."""
    base = tmp_path_factory.mktemp("automation")
    script = base / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    root, home = base / "studio", base / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        create_project(root, title="Alpha", name="alpha", script_file=script, instance=instance)
        create_project(
            root,
            title="Beta",
            name="beta",
            script_file=script,
            instance=instance,
            automation=False,
        )
        sync(root, "beta", instance=instance)
        render(root, "alpha", instance=instance, settings=SETTINGS)
    return base


@pytest.fixture
def world(rendered_studio: Path, tmp_path: Path) -> Iterator[World]:
    shutil.copytree(rendered_studio, tmp_path / "copy")
    root, home = tmp_path / "copy" / "studio", tmp_path / "copy" / "dagster"
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        w = World(root, instance, build_definitions(root, SETTINGS), None)
        assert w.tick() == {}, "first tick"
        yield w


def _chain(*kinds: str, parts: set[str | None]) -> Requests:
    return {f"alpha/{k}": set(parts) for k in kinds}


def test_quiet_after_render_then_a_sentence_edit_requests_its_chain(world: World) -> None:
    assert world.tick() == {}
    world.edit("alpha", "Ash falls like grey snow.", "Ash falls like soft grey snow.")
    assert world.tick() == _chain("narration", "shot", "keyframe", "clip", parts={IDS[1]})
    assert world.tick() == {}, "a request is handled once"


def test_a_directive_edit_requests_the_shot_and_what_follows_it_but_not_the_narration(
    world: World,
) -> None:
    world.edit(
        "alpha",
        "The sky over the volcano glows red.\n",
        "The sky over the volcano glows red.\n> image: lava rivers at night\n",
    )
    assert world.tick() == _chain("shot", "keyframe", "clip", parts={IDS[0]})


def test_a_new_sentence_requests_its_chain(world: World) -> None:
    before = set(world.instance.get_dynamic_partitions(partitions_name("alpha")))
    world.edit(
        "alpha", "Life returns to the slopes.", "Life returns to the slopes. Ferns grow first."
    )
    new = set(world.instance.get_dynamic_partitions(partitions_name("alpha"))) - before
    assert len(new) == 1
    assert world.tick() == _chain("narration", "shot", "keyframe", "clip", parts=set(new))


def test_a_code_version_change_requests_every_narration_and_the_clips_made_from_them(
    world: World,
) -> None:
    espeak = build_definitions(world.root, BackendSettings(clip_preset="ultrafast", tts="espeak"))
    narr = key("alpha", "narration")
    graph = espeak.resolve_asset_graph()
    assert graph.get(narr).code_version != world.defs.resolve_asset_graph().get(narr).code_version
    assert world.tick(espeak) == _chain("narration", "clip", parts=set(IDS))


def test_a_project_without_automation_is_never_requested(world: World) -> None:
    world.edit("beta", "Ash falls like grey snow.", "Ash falls like wet grey snow. Rain comes.")
    assert not world.instance.get_materialized_partitions(key("beta", "narration"))
    assert world.tick() == {}


def test_the_chain_runs_in_one_evaluation_then_the_project_outputs(world: World) -> None:
    before = {k: world.latest(k, IDS[0]) for k in SENTENCE_KINDS}
    world.edit(
        "alpha",
        "The sky over the volcano glows red.\n",
        "The sky over the volcano glows red.\n> image: lava rivers at night\n",
    )
    ticks = world.settle()
    sentence_level = [
        {k: v for k, v in t.items() if k.split("/")[1] in SENTENCE_KINDS} for t in ticks
    ]
    assert [t for t in sentence_level if t] == [_chain("shot", "keyframe", "clip", parts={IDS[0]})]
    after = {k: world.latest(k, IDS[0]) for k in SENTENCE_KINDS}
    assert after["narration"] == before["narration"]
    assert all(after[k] != before[k] for k in ("shot", "keyframe", "clip")), "all regenerated"
    later = set().union(*ticks)
    assert all(name.startswith("alpha/") for name in later)
    assert {"alpha/rough_cut", "alpha/storyboard", "alpha/export"} <= later
    assert "alpha/narration" not in later and "alpha/subtitles" not in later


@pytest.mark.parametrize("made_by", ["a batch", "a chained run"])
def test_an_unchanged_shot_stops_the_cascade(world: World, made_by: str) -> None:
    folder = world.root / "projects" / "alpha" / "sentences" / IDS[2]
    line = "Life returns to the slopes.\n"
    if made_by == "a chained run":
        # the keyframe and clip were last made by a one-sentence run (Dagster records their
        # provenance), not by the batch of the first render (the studio records it)
        world.edit("alpha", line, f"{line}> image: ferns on black rock\n")
        assert world.settle()[0] == _chain("shot", "keyframe", "clip", parts={IDS[2]})
        line = f"{line}> image: ferns on black rock\n"
    shot = (folder / "shot.json").read_text(encoding="utf-8")
    files = {name: (folder / name).stat().st_mtime_ns for name in ("keyframe.png", "clip.mp4")}
    before = {k: world.latest(k, IDS[2]) for k in SENTENCE_KINDS}
    camera = json.loads(shot)["camera_movement"]
    world.edit("alpha", line, f"{line}> camera: {camera}\n")
    ticks = world.settle()
    # the chain is requested together; the shot comes out identical, so the keyframe step
    # regenerates nothing and records nothing, and the clip step is skipped after it
    assert ticks[0] == _chain("shot", "keyframe", "clip", parts={IDS[2]})
    after = {k: world.latest(k, IDS[2]) for k in SENTENCE_KINDS}
    assert after["shot"] != before["shot"]
    assert {k: after[k] for k in ("narration", "keyframe", "clip")} == {
        k: before[k] for k in ("narration", "keyframe", "clip")
    }
    assert (folder / "shot.json").read_text(encoding="utf-8") == shot
    assert {name: (folder / name).stat().st_mtime_ns for name in files} == files
    # nothing below the shot is requested again; the storyboard, which shows the shot's
    # prompts, may refresh (eager() counts the shot's new materialization)
    assert set().union(*ticks[1:]) <= {"alpha/storyboard"}


def test_a_chained_run_regenerates_the_clip_when_only_the_narration_changed(
    world: World,
) -> None:
    """The keyframe comes out unchanged while the narration changed: the clip is made again
    (in the same run, or in the next evaluation if the run skipped it)."""
    folder = world.root / "projects" / "alpha" / "sentences" / IDS[1]
    keyframe = (folder / "keyframe.png").stat().st_mtime_ns
    before = {k: world.latest(k, IDS[1]) for k in SENTENCE_KINDS}
    # a voice change is a code version change of the narration only
    espeak = build_definitions(world.root, BackendSettings(clip_preset="ultrafast", tts="espeak"))
    world.defs = espeak
    world.settle()
    after = {k: world.latest(k, IDS[1]) for k in SENTENCE_KINDS}
    assert after["narration"] != before["narration"]
    assert after["clip"] != before["clip"]
    assert after["keyframe"] == before["keyframe"]
    assert (folder / "keyframe.png").stat().st_mtime_ns == keyframe


def test_a_project_created_before_the_first_evaluation_is_made_by_it(tmp_path: Path) -> None:
    """`videogen new`, then `videogen ui`: the script watcher publishes the sentences, and
    whichever of the two sensors ticks first, the project is made. Here the worse order: the
    sentences are published before the automation sensor's first evaluation, which Dagster
    counts as handled (`newly_missing` and a data-version change alone never fire for it)."""
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    root, home = tmp_path / "studio", tmp_path / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        create_project(root, title="Alpha", name="alpha", script_file=script, instance=instance)
        sync(root, "alpha", instance=instance)  # as the script watcher's first tick does
        w = World(root, instance, build_definitions(root, SETTINGS), None)
        first = w.tick()
        assert first == _chain(*SENTENCE_KINDS, parts=set(IDS)), first  # the chain, one tick
        w.run(first)
        ticks = w.settle()
        assert ticks and "alpha/rough_cut" in set().union(*ticks), ticks
        for kind in SENTENCE_KINDS:
            assert set(instance.get_materialized_partitions(key("alpha", kind))) == set(IDS)
        assert w.tick() == {}
