"""The NLE export package: sequential files, metadata, subtitles and editor timelines."""

from videogen_assets.export.package import (
    ExportError,
    ExportReport,
    LeftOut,
    MissingMediaError,
    metadata_schema,
    package_file_names,
    read_metadata,
    recover_export,
    validate_metadata,
    write_export,
    write_zip,
)
from videogen_assets.export.runs import (
    ActiveRun,
    narration_loudness,
    refuse_during_runs,
    runs_in_progress,
)
from videogen_assets.export.timelines import (
    TIMELINE_FILES,
    TimelineEntry,
    build_timeline,
    read_timeline,
    relink_timelines,
    resolve_reference,
    write_timelines,
)

__all__ = [
    "TIMELINE_FILES",
    "ActiveRun",
    "ExportError",
    "ExportReport",
    "LeftOut",
    "MissingMediaError",
    "TimelineEntry",
    "build_timeline",
    "metadata_schema",
    "narration_loudness",
    "package_file_names",
    "read_metadata",
    "read_timeline",
    "recover_export",
    "refuse_during_runs",
    "relink_timelines",
    "resolve_reference",
    "runs_in_progress",
    "validate_metadata",
    "write_export",
    "write_timelines",
    "write_zip",
]
