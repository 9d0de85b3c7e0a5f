"""Declarative automation as the daemon evaluates it: after a script edit exactly the affected
sentence assets are requested, one level of the chain per tick; an unchanged data version stops
the cascade; a code version change requests every partition; a project with `automation: false`
is never requested."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from samples import SMALL_SCRIPT

from videogen.operations import create_project, render, sync
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_assets.partitions import partitions_name
from videogen_resources.settings import BackendSettings

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
        """Materialize what was requested, one run per asset and partition."""
        assets = [
            a
            for a in self.defs.assets or []
            if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))
        ]
        resources = dict(self.defs.resources or {})
        for name, parts in sorted(requests.items()):
            for part in sorted(parts, key=str):
                result = dg.materialize(
                    [
                        *assets,
                        *(a for a in self.defs.assets or [] if isinstance(a, dg.SourceAsset)),
                    ],
                    instance=self.instance,
                    resources=resources,
                    selection=[dg.AssetKey.from_user_string(name)],
                    partition_key=part,
                )
                assert result.success, name

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


def test_quiet_after_render_then_a_sentence_edit_requests_its_narration_and_shot(
    world: World,
) -> None:
    assert world.tick() == {}
    world.edit("alpha", "Ash falls like grey snow.", "Ash falls like soft grey snow.")
    assert world.tick() == _chain("narration", "shot", parts={IDS[1]})
    assert world.tick() == {}, "a request is handled once"


def test_a_directive_edit_requests_the_shot_only(world: World) -> None:
    world.edit(
        "alpha",
        "The sky over the volcano glows red.\n",
        "The sky over the volcano glows red.\n> image: lava rivers at night\n",
    )
    assert world.tick() == _chain("shot", parts={IDS[0]})


def test_a_new_sentence_requests_its_narration_and_shot(world: World) -> None:
    before = set(world.instance.get_dynamic_partitions(partitions_name("alpha")))
    world.edit(
        "alpha", "Life returns to the slopes.", "Life returns to the slopes. Ferns grow first."
    )
    new = set(world.instance.get_dynamic_partitions(partitions_name("alpha"))) - before
    assert len(new) == 1
    assert world.tick() == _chain("narration", "shot", parts=set(new))


def test_a_code_version_change_requests_every_narration(world: World) -> None:
    espeak = build_definitions(world.root, BackendSettings(clip_preset="ultrafast", tts="espeak"))
    narr = key("alpha", "narration")
    graph = espeak.resolve_asset_graph()
    assert graph.get(narr).code_version != world.defs.resolve_asset_graph().get(narr).code_version
    assert world.tick(espeak) == _chain("narration", parts=set(IDS))


def test_a_project_without_automation_is_never_requested(world: World) -> None:
    world.edit("beta", "Ash falls like grey snow.", "Ash falls like wet grey snow. Rain comes.")
    assert not world.instance.get_materialized_partitions(key("beta", "narration"))
    assert world.tick() == {}


def test_the_cascade_runs_one_level_per_tick_to_the_project_outputs(world: World) -> None:
    world.edit(
        "alpha",
        "The sky over the volcano glows red.\n",
        "The sky over the volcano glows red.\n> image: lava rivers at night\n",
    )
    ticks = world.settle()
    sentence_level = [
        {k: v for k, v in t.items() if k.split("/")[1] in SENTENCE_KINDS} for t in ticks
    ]
    assert [t for t in sentence_level if t] == [
        _chain("shot", parts={IDS[0]}),
        _chain("keyframe", parts={IDS[0]}),
        _chain("clip", parts={IDS[0]}),
    ]
    later = set().union(*ticks)
    assert all(name.startswith("alpha/") for name in later)
    assert {"alpha/rough_cut", "alpha/storyboard", "alpha/export"} <= later
    assert "alpha/narration" not in later and "alpha/subtitles" not in later


def test_an_unchanged_shot_stops_the_cascade(world: World) -> None:
    path = world.root / "projects" / "alpha" / "sentences" / IDS[2] / "shot.json"
    shot = path.read_text(encoding="utf-8")
    camera = json.loads(shot)["camera_movement"]
    world.edit(
        "alpha",
        "Life returns to the slopes.\n",
        f"Life returns to the slopes.\n> camera: {camera}\n",
    )
    ticks = world.settle()
    sentence_level = [
        {k: v for k, v in t.items() if k.split("/")[1] in SENTENCE_KINDS} for t in ticks
    ]
    # keyframe and clip are not requested; the storyboard, which shows the shot's prompts,
    # may refresh (eager() counts the shot's new materialization)
    assert [t for t in sentence_level if t] == [_chain("shot", parts={IDS[2]})]
    assert set().union(*ticks) <= {"alpha/shot", "alpha/storyboard"}
    assert path.read_text(encoding="utf-8") == shot
