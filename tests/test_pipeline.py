"""The embedded pipeline end to end on a temporary instance: every asset materialized for a small
project, real decoded files, per-sentence metadata and checks, and an edit regenerating only the
edited sentence's chain; every run over one sentence names it in its tags."""

from __future__ import annotations

import json
import math

import dagster as dg
import pytest
from PIL import Image

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project, render, sync
from videogen_assets.context import key
from videogen_assets.definitions import build_definitions
from videogen_assets.status import sentence_statuses
from videogen_resources.audio import wav_num_samples
from videogen_resources.media import probe
from videogen_resources.settings import BackendSettings

pytestmark = pytest.mark.slow  # renders a project end to end

SETTINGS = BackendSettings(clip_preset="ultrafast")
IDS = ["volcanoes.s0001", "volcanoes.s0002", "volcanoes.s0003"]


def _mats(instance: dg.DagsterInstance, kind: str) -> dict[str, int]:
    """Number of materializations per sentence partition."""
    out: dict[str, int] = {}
    records = instance.fetch_materializations(key("volcanoes", kind), limit=1000).records
    for rec in records:
        out[rec.partition_key or ""] = out.get(rec.partition_key or "", 0) + 1
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("pipeline")
    root = base / "studio"
    script = base / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    (base / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(base / "dagster")) as instance:
        folder, _ = create_project(
            root, title="Volcanoes", name="volcanoes", script_file=script, instance=instance
        )
        render(root, "volcanoes", instance=instance, settings=SETTINGS)
        yield root, folder, instance


def test_every_file_is_real(rendered) -> None:  # type: ignore[no-untyped-def]
    root, folder, _ = rendered
    for sid in IDS:
        media = folder / "sentences" / sid
        samples, rate = wav_num_samples(media / "narration.wav")
        assert rate == 22050 and samples > rate // 2
        with Image.open(media / "keyframe.png") as im:
            assert im.size == (1920, 1080)
        clip = probe(media / "clip.mp4")
        assert clip.video is not None and clip.audio is not None
        assert (clip.video.codec, clip.video.width, clip.video.height) == ("h264", 1920, 1080)
        assert clip.video.pix_fmt == "yuv420p" and clip.audio.sample_rate == 48000
        assert clip.video.frames == math.ceil(samples * clip.video.fps / rate - 1e-9)
    cut = probe(folder / "rough_cut.mp4")
    assert cut.video is not None and cut.audio is not None
    assert abs(cut.video.duration_s - cut.audio.duration_s) <= 1 / cut.video.fps + 1e-6
    assert "Ash falls like grey snow." in (folder / "subtitles.srt").read_text(encoding="utf-8")
    assert (folder / "subtitles.vtt").read_text(encoding="utf-8").startswith("WEBVTT")
    assert (folder / "storyboard.html").exists()
    meta = json.loads((root / "exports" / "volcanoes" / "metadata.json").read_text("utf-8"))
    assert [s["sentence_id"] for s in meta["sentences"]] == IDS
    for s in meta["sentences"]:  # narration normalized to the spoken-word target (-16 LUFS)
        assert s["loudness_lufs"] is not None and abs(s["loudness_lufs"] + 16.0) < 1.0


def test_each_sentence_has_its_own_materialization_and_metadata(rendered) -> None:  # type: ignore[no-untyped-def]
    _root, folder, instance = rendered
    for kind in ("narration", "shot", "keyframe", "clip"):
        assert _mats(instance, kind) == dict.fromkeys(IDS, 1), kind
    ev = instance.get_latest_materialization_event(key("volcanoes", "narration"))
    assert ev is not None
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key("volcanoes", "shot"), asset_partitions=[IDS[1]]),
        limit=1,
    ).records[0]
    md = rec.asset_materialization.metadata  # type: ignore[union-attr]
    assert md["camera_movement"].value == "zoom-in" and md["motion_strength"].value == 0.7
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key("volcanoes", "keyframe"), asset_partitions=[IDS[0]]),
        limit=1,
    ).records[0]
    # made without a media server running: still a short inline preview and links to the
    # server `videogen ui` starts (its default address), never an inline data URI
    md = rec.asset_materialization.metadata  # type: ignore[union-attr]
    preview = str(md["preview"].value)
    assert len(preview) < 1000 and "data:" not in preview
    base = f"http://127.0.0.1:3031/projects/volcanoes/sentences/{IDS[0]}"
    small = f"http://127.0.0.1:3031/projects/volcanoes/preview/{IDS[0]}/keyframe.jpg"
    assert preview == f"[![keyframe of {IDS[0]}]({small})]({base}/keyframe.png)"
    assert md["open"].value == f"{base}/keyframe.png"
    assert md["storyboard"].value.endswith(f"/projects/volcanoes/storyboard.html#shot-{IDS[0]}")
    assert md["sentence"].value == 's0001 · "The sky over the volcano glows red."'
    assert md["section"].value == "Opening"
    for name in ("keyframe.jpg", "clip.jpg", "narration.png"):  # small previews, 480 px wide
        with Image.open(folder / "preview" / IDS[0] / name) as im:
            assert im.width == 480 and im.height <= 270, name


def test_checks_passed(rendered) -> None:  # type: ignore[no-untyped-def]
    _root, _folder, instance = rendered
    for kind, check in (
        ("narration", "audible"),
        ("keyframe", "is_1920x1080"),
        ("keyframe", "upscaled_at_most_2x"),  # cards are drawn at their size: no upscale
        ("clip", "matches_narration"),
        ("rough_cut", "audio_video_in_sync"),
    ):
        ev = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(key("volcanoes", kind), check)]
        )[dg.AssetCheckKey(key("volcanoes", kind), check)]
        assert ev is not None and ev.status.value == "SUCCEEDED", (kind, check)


def test_everything_fresh_then_an_edit_makes_one_chain_stale(rendered) -> None:  # type: ignore[no-untyped-def]
    root, folder, instance = rendered
    defs = build_definitions(root, SETTINGS)
    statuses = sentence_statuses(instance, defs, "volcanoes", IDS)
    assert all(v == "done" for row in statuses.values() for v in row.values()), statuses

    script = folder / "script.md"
    script.write_text(
        script.read_text().replace("Ash falls like grey snow.", "Ash falls like soft grey snow."),
        encoding="utf-8",
    )
    sync(root, "volcanoes", instance=instance)
    statuses = sentence_statuses(instance, defs, "volcanoes", IDS)
    assert (
        statuses[IDS[0]]
        == statuses[IDS[2]]
        == dict.fromkeys(("narration", "shot", "keyframe", "clip"), "done")
    )
    assert statuses[IDS[1]]["narration"] == "stale" and statuses[IDS[1]]["shot"] == "stale"

    # The storyboard shows Dagster's view: the edited sentence is marked stale, the others done.
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    dg.materialize(
        assets,
        instance=instance,
        resources=dict(defs.resources or {}),
        selection=[key("volcanoes", "storyboard")],
    )
    html = (folder / "storyboard.html").read_text(encoding="utf-8")
    assert f'data-sentence="{IDS[1]}" data-worst="stale"' in html
    assert f'data-sentence="{IDS[0]}" data-worst="done"' in html

    render(root, "volcanoes", instance=instance, settings=SETTINGS)
    assert _mats(instance, "narration") == {IDS[0]: 1, IDS[1]: 2, IDS[2]: 1}
    assert _mats(instance, "clip") == {IDS[0]: 1, IDS[1]: 2, IDS[2]: 1}
    statuses = sentence_statuses(instance, defs, "volcanoes", IDS)
    assert all(v == "done" for row in statuses.values() for v in row.values()), statuses

    # the render's runs over the one edited sentence name it: words and section, as run tags
    label = 's0002 · "Ash falls like soft grey snow."'
    named = instance.get_runs(dg.RunsFilter(tags={"videogen/sentence": label}))
    assert len(named) == 4, [r.tags for r in instance.get_runs()]
    assert {r.tags["videogen/section"] for r in named} == {"Opening"}
    assert {r.tags["dagster/asset_partition_range_start"] for r in named} == {IDS[1]}


def test_a_run_over_one_sentence_is_named_whoever_launched_it(rendered) -> None:  # type: ignore[no-untyped-def]
    """A run launched without the tags (as declarative automation does) gets them from its
    step."""
    root, _folder, instance = rendered
    defs = build_definitions(root, SETTINGS)
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    result = dg.materialize(
        assets,
        instance=instance,
        resources=dict(defs.resources or {}),
        selection=[key("volcanoes", "shot")],
        partition_key=IDS[2],
    )
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.tags["videogen/sentence"] == 's0003 · "Life returns to the slopes."'
    assert run.tags["videogen/section"] == "Ending"
    assert run.tags["dagster/partition"] == IDS[2]
