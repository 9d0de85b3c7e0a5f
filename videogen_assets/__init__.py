"""The studio's asset graph (see `videogen_assets.definitions`).

Importing the package imports no Dagster: the export package (`videogen_assets.export`) runs in
processes that never build a graph, and Dagster would more than double their start-up time and
memory.
"""

import warnings

# The graph deliberately uses observable source assets and backfill policies; Dagster's beta and
# preview warnings about them would repeat once per asset per project in every log and CLI
# command. Matched by Dagster's wording ("... is currently in beta, ..."), not by its
# BetaWarning/PreviewWarning classes, whose import would load all of Dagster
# (tests/test_export_imports.py pins both).
warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview), ")
