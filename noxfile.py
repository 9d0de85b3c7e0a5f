"""Sessions beyond the everyday test run (``nox -l`` lists them).

``dagster-latest``: the studio on the newest Dagster on the registry instead of the pinned one,
to see what a new Dagster release breaks before moving the pins.
"""

from pathlib import Path

import nox

nox.options.sessions = []  # nothing runs without -s

# The tests that exercise the Dagster graph, the staleness rule, rendering, automation and
# every use of Dagster's private API (videogen_assets/dagster_internals.py).
DAGSTER_TESTS = [
    "tests/test_dagster_internals.py",
    "tests/test_definitions.py",
    "tests/test_status.py",
    "tests/test_pipeline.py",
    "tests/test_automation.py",
]

# Dagster's core packages share one version; its libraries (0.x) move in step with it.
DAGSTER_PACKAGES = [
    "dagster",
    "dagster-webserver",
    "dagster-dg-cli",
    "dagster-postgres",
    "dagster-celery",
]


@nox.session(name="dagster-latest", python="3.11", venv_backend="uv")
def dagster_latest(session: nox.Session) -> None:
    """The graph, status, pipeline and automation tests on the newest Dagster release."""
    session.install("-e", ".[dev]")
    # The newest releases of Dagster's packages that agree with each other (its libraries pin
    # one exact dagster version), then those versions in place of the project's pins.
    tmp = Path(session.create_tmp())
    wanted, newest, overrides = (tmp / n for n in ("wanted.in", "newest.txt", "overrides.txt"))
    wanted.write_text("\n".join(DAGSTER_PACKAGES) + "\n", encoding="utf-8")
    session.run(
        "uv", "pip", "compile", "--quiet", "--upgrade", "--python-version", "3.11",
        str(wanted), "-o", str(newest), external=True,
    )  # fmt: skip
    pins = [line for line in newest.read_text().splitlines() if line.startswith("dagster")]
    overrides.write_text("\n".join(pins) + "\n", encoding="utf-8")
    session.install("--overrides", str(overrides), *pins)
    versions = "import importlib.metadata as m, sys; [print(p, m.version(p)) for p in sys.argv[1:]]"
    session.run("python", "-c", versions, *DAGSTER_PACKAGES)
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *(session.posargs or DAGSTER_TESTS),
    )
