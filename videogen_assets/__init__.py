"""The studio's asset graph (see `videogen_assets.definitions`)."""

import warnings

from dagster import BetaWarning, PreviewWarning

# The graph deliberately uses observable source assets and backfill policies; their beta
# warnings would repeat once per asset per project in every log and CLI command.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
