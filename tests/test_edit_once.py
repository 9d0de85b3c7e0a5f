"""One edit, one materialization of each affected asset partition, whatever the timing.

The race of a slow step: a tick sees an input of the clip change while the clip's own run is
still in progress (the trigger latches behind ``~in_progress``), and a later tick reads the
event log before the clip's materialization but the runs after its run ended. Dagster's latch
then asks for the clip again. Here the clip step is made slow on purpose and such a tick is
forced (it reads the event log, the run finishes, then it evaluates), and every asset partition
of the project is counted after the edit: the edited sentence's affected assets and the project
outputs exactly once, nothing else. The same holds for the script watcher's own run of an edit
(the chain and the project outputs in one run), with ticks evaluated back to back while it
runs."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.support.automation import SlowClips, World
from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, render
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_resources.settings import BackendSettings

pytestmark = pytest.mark.slow  # renders, then runs automation ticks

SETTINGS = BackendSettings(clip_preset="ultrafast")
FIRST, SECOND = "alpha.s0001", "alpha.s0002"
SKY = "The sky over the volcano glows red.\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("edit_once")
    script = base / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    root, home = base / "studio", base / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        create_project(root, title="Alpha", name="alpha", script_file=script, instance=instance)
        render(root, "alpha", instance=instance, settings=SETTINGS)
    return base


@pytest.fixture
def world(rendered: Path, tmp_path: Path) -> Iterator[World]:
    shutil.copytree(rendered, tmp_path / "copy")
    root, home = tmp_path / "copy" / "studio", tmp_path / "copy" / "dagster"
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        w = World(root, instance, build_definitions(root, SETTINGS), None)
        assert w.tick() == {}, "first tick"
        yield w


class Background:
    """A run in a thread; its failure is raised when joined."""

    def __init__(self, target: Callable[[], None]) -> None:
        self.error: BaseException | None = None

        def body() -> None:
            try:
                target()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=body)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self) -> None:
        self.thread.join(timeout=300)
        assert not self.thread.is_alive(), "the run did not end"
        if self.error is not None:
            raise self.error


def _wait_for(what: Callable[[], bool], run: Background) -> None:
    deadline = time.monotonic() + 120
    while not what():
        assert run.alive(), "the run ended before the awaited moment"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _per_sentence(requests: dict[str, set[str | None]]) -> dict[str, set[str | None]]:
    return {k: v for k, v in requests.items() if v != {None}}


def test_a_directive_edit_makes_the_slow_clip_once_when_its_run_ends_during_a_tick(
    world: World, tmp_path: Path
) -> None:
    gate = tmp_path / "clip may finish"
    slow = {"clips": SlowClips(preset="ultrafast", gate=str(gate))}
    start = world.event_position()
    shot_before = world.latest("shot", FIRST)
    world.edit("alpha", SKY, f"{SKY}> camera: orbit\n")
    requested = world.tick()
    assert requested == {f"alpha/{k}": {FIRST} for k in ("shot", "keyframe", "clip")}
    # the daemon's next tick, before the run has made anything: the request is handled
    assert world.tick() == {}
    run = Background(lambda: world.run(requested, slow))
    # the shot is made, the clip waits: a tick sees the shot's new data version while the
    # clip's run is in progress
    _wait_for(lambda: world.latest("shot", FIRST) != shot_before, run)
    assert world.tick() == {}, "nothing is requested while the chain is in progress"
    assert run.alive(), "the clip step waits for the test"

    def clip_made_and_run_ended() -> None:
        gate.touch()
        run.join()

    # a tick reads the event log, the clip is made and its run ends, then the tick evaluates
    paused = world.paused_tick(clip_made_and_run_ended)
    assert _per_sentence(paused) == {}, "the clip was requested again"
    world.run(paused, slow)  # the project outputs, now that the chain is made
    ticks = world.settle(resources=slow)
    assert all(not _per_sentence(t) for t in ticks), ticks
    assert world.tick() == {}
    assert world.materializations_after(start) == {
        f"shot[{FIRST}]": 1,
        f"keyframe[{FIRST}]": 1,
        f"clip[{FIRST}]": 1,
        "rough_cut": 1,
        "storyboard": 1,
        "export": 1,
    }


def _watcher_tick(
    world: World, cursor: str | None
) -> tuple[dg.SensorResult | dg.SkipReason, str | None]:
    """One evaluation as the daemon makes it (run requests resolved against the jobs)."""
    from dagster import partition_loading_context

    sensor = world.defs.resolve_sensor_def("script_watcher")
    with (
        dg.build_sensor_context(
            instance=world.instance,
            cursor=cursor,
            resources=dict(world.defs.resources or {}),
            repository_def=world.defs.get_repository_def(),
        ) as ctx,
        partition_loading_context(dynamic_partitions_store=world.instance),
    ):
        data = sensor.evaluate_tick(ctx)
    if not data.run_requests and data.cursor == cursor:
        return dg.SkipReason(data.skip_message), cursor
    return dg.SensorResult(run_requests=data.run_requests, cursor=data.cursor), data.cursor


def _observed(world: World, name: str, partition: str) -> str | None:
    from videogen_assets.dagster_internals import extract_data_version_from_entry

    rec = world.instance.get_latest_data_version_record(
        key("alpha", name), is_source=True, partition_key=partition
    )
    dv = extract_data_version_from_entry(rec.event_log_entry) if rec else None
    return dv.value if dv else None


@pytest.mark.parametrize(
    ("old", "new", "made"),
    [
        (
            "Ash falls like grey snow.",
            "Ash falls like soft grey snow.",
            ["narration", "shot", "keyframe", "clip", "subtitles"],
        ),
        (
            "Ash falls like grey snow.\n> camera: zoom-in",
            "Ash falls like grey snow.\n> camera: orbit",
            ["shot", "keyframe", "clip"],
        ),
    ],
    ids=["words", "directive"],
)
def test_the_watchers_run_of_one_edit_makes_everything_once_with_ticks_beside_it(
    world: World, tmp_path: Path, old: str, new: str, made: list[str]
) -> None:
    gate = tmp_path / "clip may finish"
    slow = {"clips": SlowClips(preset="ultrafast", gate=str(gate))}
    _, cursor = _watcher_tick(world, None)
    start = world.event_position()
    shot_before = world.latest("shot", SECOND)
    before = {n: _observed(world, n, SECOND) for n in ("sentence", "direction")}
    world.save("alpha", old, new)
    result, cursor = _watcher_tick(world, cursor)
    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests or []) == 1
    request = (result.run_requests or [])[0]
    outputs = ["rough_cut", "storyboard", "export"] + (["subtitles"] if "subtitles" in made else [])
    chain = [k for k in made if k != "subtitles"]
    assert request.partition_key == SECOND
    assert {k.to_user_string() for k in request.asset_selection or []} == {
        f"alpha/{k}" for k in chain + outputs
    }
    assert request.tags["videogen/sentence"] == SECOND
    # the new versions are left for the run to report: no tick can request the chain before
    # the run exists
    assert {n: _observed(world, n, SECOND) for n in before} == before
    assert world.tick() == {}
    names = [k.to_user_string() for k in request.asset_selection or []]
    run = Background(lambda: world.materialize(names, SECOND, slow))
    _wait_for(lambda: world.latest("shot", SECOND) != shot_before, run)
    assert {n: _observed(world, n, SECOND) for n in before} != before, "reported by the run"
    for _ in range(2):
        assert world.tick() == {}, "a tick requested something while the edit's run ran"
    assert run.alive(), "the clip step waits for the test"

    def rest_of_the_run() -> None:
        gate.touch()
        run.join()

    # a tick reads the event log, the clip and the project outputs are made and the run ends,
    # then the tick evaluates
    assert world.paused_tick(rest_of_the_run) == {}
    assert world.tick() == {}
    assert world.tick() == {}
    assert world.materializations_after(start) == {
        **{f"{k}[{SECOND}]": 1 for k in chain},
        **{k: 1 for k in outputs},
    }
