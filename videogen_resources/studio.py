"""The studio on disk: where projects, their sentences' media and exports live."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
from pydantic import Field

from videogen_domain import paths
from videogen_domain.project import ProjectBrief, load_brief


class StudioResource(dg.ConfigurableResource):
    """The studio root folder and the layout of the files in it."""

    root: str = Field(description="The studio root folder (VIDEOGEN_HOME, default ./studio).")
    media_base_url: str | None = Field(
        default=None,
        description="Where `videogen ui` serves the studio's media read-only (for UI previews).",
    )

    @property
    def root_path(self) -> Path:
        """The studio root as a Path."""
        return Path(self.root)

    def project_dir(self, project: str) -> Path:
        """A project's folder."""
        return paths.project_dir(self.root_path, project)

    def brief(self, project: str) -> ProjectBrief:
        """A project's brief, read fresh from project.yaml."""
        return load_brief(self.project_dir(project))

    def sentence_dir(self, project: str, sentence_id: str) -> Path:
        """The folder of one sentence's media (narration.wav, shot.json, keyframe.png, clip.mp4)."""
        return paths.safe_join(self.project_dir(project), "sentences", sentence_id)

    def export_dir(self, project: str) -> Path:
        """Where the NLE package of a project is written."""
        return self.root_path / "exports" / paths.check_project_name(project)

    def remove_sentence_files(self, project: str, sentence_id: str) -> bool:
        """Delete a deleted sentence's media folder (and its previews for the UI); True when
        something was removed."""
        previews = paths.safe_join(self.project_dir(project), "preview", sentence_id)
        if previews.exists():
            shutil.rmtree(previews)
        folder = self.sentence_dir(project, sentence_id)
        if folder.exists():
            shutil.rmtree(folder)
            return True
        return False
