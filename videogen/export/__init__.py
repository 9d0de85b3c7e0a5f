"""The NLE export package: sequential files, metadata, subtitles and editor timelines."""

from videogen.export.package import (
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
from videogen.export.timelines import (
    TIMELINE_FILES,
    MediaInfo,
    TimelineEntry,
    build_timeline,
    read_timeline,
    relink_timelines,
    resolve_reference,
    write_timelines,
)

__all__ = [
    "TIMELINE_FILES",
    "ExportError",
    "ExportReport",
    "LeftOut",
    "MediaInfo",
    "MissingMediaError",
    "TimelineEntry",
    "build_timeline",
    "metadata_schema",
    "package_file_names",
    "read_metadata",
    "read_timeline",
    "recover_export",
    "relink_timelines",
    "resolve_reference",
    "validate_metadata",
    "write_export",
    "write_timelines",
    "write_zip",
]
