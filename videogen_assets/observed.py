"""The observed per-sentence assets: `sentence` (its words) and `direction` (its directives)."""

import dagster as dg

from videogen_assets.context import DIRECTION, SENTENCE, key
from videogen_assets.partitions import sentence_partitions
from videogen_resources.studio import StudioResource
from videogen_store.database import StudioDatabase
from videogen_store.sync import sync_project


def build_observed_assets(project: str) -> list[dg.SourceAsset]:
    """`sentence` and `direction` of one project, observed from its script.md."""
    parts = sentence_partitions(project)

    def _versions(studio: StudioResource, db: StudioDatabase, which: str) -> dict[str, str]:
        result = sync_project(db, studio.project_dir(project))
        return {
            sid: (v.sentence if which == SENTENCE else v.direction)
            for sid, v in result.versions.items()
        }

    @dg.observable_source_asset(
        key=key(project, SENTENCE),
        partitions_def=parts,
        group_name=project,
        description="The words of one sentence (and who speaks them), observed from script.md.",
    )
    def sentence(studio: StudioResource, db: StudioDatabase) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition(
            {k: dg.DataVersion(v) for k, v in _versions(studio, db, SENTENCE).items()}
        )

    @dg.observable_source_asset(
        key=key(project, DIRECTION),
        partitions_def=parts,
        group_name=project,
        description="The directives of one sentence (prompts, camera, motion, cast, section).",
    )
    def direction(studio: StudioResource, db: StudioDatabase) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition(
            {k: dg.DataVersion(v) for k, v in _versions(studio, db, DIRECTION).items()}
        )

    return [sentence, direction]
