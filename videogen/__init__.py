"""The studio's app: the CLI, operations, the UI process and the media server."""

# Installs the workflow registry that a brief's workflow names are checked against
# (`videogen_domain.project.use_workflow_catalog`) in every process of the app.
import videogen_resources  # noqa: F401
