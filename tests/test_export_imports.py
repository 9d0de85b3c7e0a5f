"""What importing the export package costs: no Dagster, and the graph's warnings stay quiet.

Pins: ``import videogen_assets.export`` (and each of its modules) loads neither Dagster nor the
studio database, so an export process starts in a fraction of the time and memory a graph
process needs; the export package's media folders are the ``export`` folders and output suffixes
of the per-sentence specs; and ``import videogen_assets``, which no longer imports Dagster, still
quiets Dagster's beta and preview warnings about the graph's deliberate choices (a Dagster that
words them differently fails here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from videogen_assets.export.package import MEDIA_FOLDERS
from videogen_assets.sentence_assets import SENTENCE_SPECS

HEAVY = ("dagster", "sqlalchemy", "videogen_store", "videogen_assets.sentence_assets")


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (none of this process's imports or warning filters);
    its stdout."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


@pytest.mark.parametrize(
    "module",
    [
        "videogen_assets.export",
        "videogen_assets.export.package",
        "videogen_assets.export.timelines",
        "videogen_assets.export.runs",
    ],
)
def test_importing_the_export_loads_no_dagster(module: str) -> None:
    out = _run(
        f"""
        import json, sys
        import {module}
        print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))
        """
    )
    assert json.loads(out) == []


def test_the_package_folders_are_the_specs_export_folders() -> None:
    from_specs = {
        s.name: (s.export, Path(s.output).suffix) for s in SENTENCE_SPECS if s.export is not None
    }
    assert from_specs == MEDIA_FOLDERS


_BETA_AND_PREVIEW = """
    import json, warnings
    {first}
    import dagster as dg

    with warnings.catch_warnings(record=True) as seen:
        warnings.filterwarnings("always", append=True)  # what no earlier filter ignores

        @dg.observable_source_asset
        def observed() -> dg.DataVersion:
            return dg.DataVersion("1")

        @dg.asset(backfill_policy=dg.BackfillPolicy.single_run())
        def batched() -> None:
            pass

        dg.Definitions(assets=[observed, batched]).with_reconstruction_metadata({{}})
    named = {{w.category.__name__ for w in seen}}
    print(json.dumps(sorted(named & {{"BetaWarning", "PreviewWarning"}})))
"""


def test_dagsters_beta_and_preview_warnings_stay_quiet() -> None:
    without = _run(_BETA_AND_PREVIEW.format(first="pass"))
    assert json.loads(without) == ["BetaWarning", "PreviewWarning"]  # what the filter hides
    quiet = _run(_BETA_AND_PREVIEW.format(first="import videogen_assets"))
    assert json.loads(quiet) == []
