"""The per-sentence specs: render order is a topological sort, each asset's deps are its spec's
parents, and a new per-sentence asset (an ``upscale`` between keyframe and clip, the worked
example of docs/ARCHITECTURE.md) is one spec plus one function."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from tests.support.samples import SMALL_SCRIPT
from videogen.operations import create_project
from videogen_assets.context import KEYFRAME, NARRATION, SHOT, file_digest
from videogen_assets.definitions import build_definitions
from videogen_assets.sentence_assets import PER_SENTENCE, SENTENCE_SPECS
from videogen_assets.specs import (
    Parent,
    SentenceAssetSpec,
    SentenceStep,
    downstream,
    lineage,
    render_order,
)
from videogen_domain.atomic import atomic_path
from videogen_resources.settings import BackendSettings


def make_upscale(step: SentenceStep) -> None:
    """The keyframe at twice its size, for a clip model that wants more pixels."""
    from PIL import Image

    for pk in step.partitions:
        source, out = step.parent_file(pk), step.out(pk)
        with Image.open(source) as im:
            big = im.resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS)
        with atomic_path(out) as tmp:
            big.save(tmp, format="PNG")
        step.results.add(
            pk, data_version=file_digest(out), metadata={"path": dg.MetadataValue.path(str(out))}
        )


UPSCALE = SentenceAssetSpec(
    name="upscale",
    description="The keyframe of one sentence at twice its size.",
    parents=(Parent(KEYFRAME),),
    output="keyframe_2x.png",
    make=make_upscale,
    pool=lambda setup: "render",
    kinds=lambda setup: {"png", "pillow"},
    code_version=lambda setup: "lanczos-2x-1",
)


def with_upscale() -> tuple[SentenceAssetSpec, ...]:
    """The shipped specs, the clip made from the upscaled keyframe (its first parent)."""
    specs = [
        dataclasses.replace(s, parents=(Parent(UPSCALE.name), *s.parents[1:]))
        if s.name == "clip"
        else s
        for s in SENTENCE_SPECS
    ]
    return (*specs, UPSCALE)  # listed last: the render order still puts it before the clip


def test_render_order_is_parents_first_in_listed_order() -> None:
    assert PER_SENTENCE == ("narration", "shot", "keyframe", "clip")
    assert [s.name for s in render_order(with_upscale())] == [
        "narration",
        "shot",
        "keyframe",
        "upscale",
        "clip",
    ]
    assert lineage(SENTENCE_SPECS, "keyframe") == ("shot", "keyframe")
    assert lineage(SENTENCE_SPECS, "clip") == PER_SENTENCE
    assert downstream(SENTENCE_SPECS, "sentence") == PER_SENTENCE
    assert downstream(SENTENCE_SPECS, "direction") == ("shot", "keyframe", "clip")


def test_a_cycle_or_an_unknown_parent_is_refused() -> None:
    shot = next(s for s in SENTENCE_SPECS if s.name == SHOT)
    looped = [
        dataclasses.replace(shot, parents=(Parent("clip"),)) if s.name == SHOT else s
        for s in SENTENCE_SPECS
    ]
    with pytest.raises(ValueError, match="cycle"):
        render_order(looped)
    with pytest.raises(ValueError, match="'nowhere' is not a per-sentence spec"):
        render_order([dataclasses.replace(UPSCALE, parents=(Parent("nowhere"),))])
    with pytest.raises(ValueError, match="same name"):
        render_order([UPSCALE, UPSCALE])


def _project(root: Path, tmp_path: Path) -> None:
    script = tmp_path / "s.md"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    create_project(root, title="Alpha", name="alpha", script_file=script)


def test_each_assets_deps_are_its_specs_parents(studio_root: Path, tmp_path: Path) -> None:
    _project(studio_root, tmp_path)
    graph = build_definitions(studio_root, BackendSettings()).resolve_asset_graph()
    for spec in SENTENCE_SPECS:
        node = graph.get(spec.key("alpha"))
        assert set(node.parent_keys) == {k for k, _ in spec.parent_keys("alpha")}
        observed = {k for k, is_observed in spec.parent_keys("alpha") if is_observed}
        assert observed == {p for p in node.parent_keys if graph.get(p).is_external}


def test_an_upscale_asset_is_one_spec_and_one_function(studio_root: Path, tmp_path: Path) -> None:
    _project(studio_root, tmp_path)
    defs = build_definitions(studio_root, BackendSettings(), sentence_specs=with_upscale())
    graph = defs.resolve_asset_graph()
    up, clip = (
        graph.get(dg.AssetKey(["alpha", "upscale"])),
        graph.get(dg.AssetKey(["alpha", "clip"])),
    )
    assert set(up.parent_keys) == {dg.AssetKey(["alpha", KEYFRAME])}
    assert set(clip.parent_keys) == {
        dg.AssetKey(["alpha", n]) for n in ("upscale", NARRATION, SHOT)
    }
    assert up.group_name == "alpha" and up.code_version == "lanczos-2x-1"
    assert up.partitions_def == clip.partitions_def
    assert up.automation_condition is not None
    assert set(up.kinds) == {"png", "pillow"}
    upscale_def = next(
        a
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(["alpha", "upscale"])
    )
    assert upscale_def.op.pool == "render"
    assert {"studio", "db"} <= upscale_def.required_resource_keys  # and no maker
    assert not upscale_def.required_resource_keys & {"narrator", "llm", "keyframes", "clips"}
    assert upscale_def.descriptions_by_key[upscale_def.key] == UPSCALE.description
    # the shipped graph is untouched
    shipped = build_definitions(studio_root, BackendSettings()).resolve_asset_graph()
    assert not shipped.has(dg.AssetKey(["alpha", "upscale"]))
