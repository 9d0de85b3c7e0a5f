"""Contract: a studio whose ``DAGSTER_HOME/dagster.yaml`` puts Dagster's instance storage on
PostgreSQL (``deploy/postgres/dagster.yaml``) keeps everything Dagster records there.

A real PostgreSQL server (Debian's ``postgresql`` package) is started on 127.0.0.1 with password
authentication; the instance reads the password from ``DAGSTER_PG_PASSWORD``. After the real
`videogen new` and `videogen render` of an eight-sentence script: the studio's dagster.yaml is
still the one written before (`videogen` does not replace it with the SQLite defaults); the run,
event log and schedule storages are dagster-postgres's; the runs, the materialization of every
partition of narration, shot, keyframe and clip and of every project asset, the dynamic
partitions and the pool limits are rows in PostgreSQL and read back the same through
``DagsterInstance``; no SQLite storage (``history/``, ``schedules/``, any ``*.db``) appears in
DAGSTER_HOME; and the rendered files exist. The real Dagster daemon, started on the studio's
workspace, heartbeats into the same database. The example file keeps the studio's other
instance settings (those of the repository's ``dagster.yaml``).

Without the PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``) the module is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster import DagsterRunStatus
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from tests.support.crash import REPO, SCRIPT_8, studio_env, videogen_cmd
from videogen_assets.context import PER_PROJECT, SCRIPT, file_digest, key
from videogen_assets.dagster_files import DAGSTER_YAML, WORKSPACE_YAML
from videogen_assets.dagster_internals import DATA_VERSION_TAG
from videogen_assets.partitions import partitions_name
from videogen_assets.sentence_assets import PER_SENTENCE

pytestmark = pytest.mark.slow

PROJECT = "volcanoes"
N = 8
EXAMPLE = REPO / "deploy" / "postgres" / "dagster.yaml"
SENTENCE_FILES = ("narration.wav", "shot.json", "keyframe.png", "clip.mp4")
PROJECT_FILES = ("rough_cut.mp4", "subtitles.srt", "subtitles.vtt", "storyboard.html")
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def _bindir() -> Path | None:
    """The folder of the PostgreSQL server binaries: ``pg_config --bindir`` (Debian's
    postgresql-common answers with the newest installed server), else the newest
    ``/usr/lib/postgresql/<version>/bin``, else wherever ``initdb`` is on PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(
        versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1, reverse=True
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in SERVER_BINARIES):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL server and the database made for the studio."""

    port: int
    user: str
    password: str
    db_name: str
    hostname: str = "127.0.0.1"

    def connect(self) -> Any:
        return psycopg2.connect(
            host=self.hostname,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.db_name,
        )

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            con.close()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A throw-away PostgreSQL server on 127.0.0.1 (password auth over TCP) with one database.

    PostgreSQL refuses to run as root: under root its commands run as the `postgres` system
    user, in a folder that user owns under the system temp dir (pytest's own temp dirs are
    private to root)."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
            "install Debian's `postgresql` package"
        )
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        run_as = {"user": pg_user.pw_uid, "group": pg_user.pw_gid, "extra_groups": []}
        base = Path(tempfile.mkdtemp(prefix="videogen-pg-"))
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    else:
        base = tmp_path_factory.mktemp("postgres")
    data, log = base / "data", base / "server.log"
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(base)}

    def pg(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bindir / cmd[0]), *cmd[1:]],
            cwd=base,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **run_as,
        )

    password = secrets.token_urlsafe(16)
    pwfile = base / "pwfile"
    try:
        pwfile.write_text(password + "\n", encoding="utf-8")
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        pwfile.chmod(0o600)
        init = pg(
            "initdb",
            "-D",
            str(data),
            "-U",
            "dagster",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        assert init.returncode == 0, init.stdout + init.stderr
        pwfile.unlink()
        port = 0
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-p {port}",
                f"-k {shlex.quote(str(base))}",
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ]
            start = pg(
                "pg_ctl",
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            )
            if start.returncode == 0:
                break
        else:
            text = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start: {start.stdout}{start.stderr}\n{text}")
        server = Postgres(port=port, user="dagster", password=password, db_name="videogen")
        con = psycopg2.connect(
            host=server.hostname, port=port, user="dagster", password=password, dbname="postgres"
        )
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("CREATE DATABASE videogen")
                cur.execute("SHOW listen_addresses")
                assert cur.fetchone() == ("127.0.0.1",)
        finally:
            con.close()
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        if run_as:
            shutil.rmtree(base, ignore_errors=True)


def _studio_yaml(server: Postgres) -> str:
    """The example instance config with the connection details of ``server``."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    db.update(hostname=server.hostname, port=server.port, username=server.user)
    db.update(db_name=server.db_name)
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True)
class Studio:
    root: Path
    home: Path
    folder: Path
    env: dict[str, str]
    written_yaml: str
    instance: dg.DagsterInstance
    server: Postgres


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[Studio]:
    """A studio on the PostgreSQL instance after `videogen new` and `videogen render`."""
    base = tmp_path_factory.mktemp("pg_studio")
    root, home = base / "studio", base / "dagster_home"
    home.mkdir()
    written = _studio_yaml(postgres)
    (home / "dagster.yaml").write_text(written, encoding="utf-8")
    script = base / "script.md"
    script.write_text(SCRIPT_8, encoding="utf-8")
    env = studio_env(root, home, DAGSTER_PG_PASSWORD=postgres.password)
    for args in (
        ("new", "Volcanoes", "--name", PROJECT, "--script", str(script)),
        ("render", PROJECT),
    ):
        done = subprocess.run(
            videogen_cmd(root, *args), env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, f"videogen {args[0]}: {done.stderr[-3000:]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_PG_PASSWORD", postgres.password)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield Studio(
                root=root,
                home=home,
                folder=root / "projects" / PROJECT,
                env=env,
                written_yaml=written,
                instance=instance,
                server=postgres,
            )


def _sentence_ids(studio: Studio) -> set[str]:
    return {p.name for p in (studio.folder / "sentences").iterdir()}


def test_example_keeps_the_studio_instance_settings() -> None:
    """Apart from `storage`, the example is the repository's dagster.yaml."""
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    defaults = yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))
    assert "storage" not in defaults
    assert set(example["storage"]) == {"postgres"}
    assert {k: v for k, v in example.items() if k != "storage"} == defaults


def test_videogen_keeps_the_studio_dagster_yaml(studio: Studio) -> None:
    assert (studio.home / "dagster.yaml").read_text(encoding="utf-8") == studio.written_yaml


def test_instance_storage_is_postgres(studio: Studio) -> None:
    instance = studio.instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)


def test_runs_are_rows_in_postgres(studio: Studio) -> None:
    """One run per per-sentence asset (one batch of eight) and one for the project assets."""
    rows = studio.server.query("SELECT run_id, status FROM runs")
    runs = studio.instance.get_runs()
    assert len(rows) == len(PER_SENTENCE) + 1
    assert sorted(rows) == sorted((r.run_id, r.status.value) for r in runs)
    assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}


def test_every_materialization_is_in_the_postgres_event_log(studio: Studio) -> None:
    ids = _sentence_ids(studio)
    assert len(ids) == N
    rows = studio.server.query(
        "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = %s",
        "ASSET_MATERIALIZATION",
    )
    for kind in PER_SENTENCE:
        asset = key(PROJECT, kind)
        in_sql = [part for k, part in rows if k == asset.to_string()]
        assert sorted(in_sql) == sorted(ids), kind
        assert set(studio.instance.get_materialized_partitions(asset)) == ids, kind
    for kind in PER_PROJECT:
        asset = key(PROJECT, kind)
        assert [part for k, part in rows if k == asset.to_string()] == [None], kind
        assert studio.instance.get_latest_materialization_event(asset) is not None, kind
    # The creator's script.md is recorded once as the `script` asset's materialization (a
    # runless report, `videogen_assets.publish.report_script`), with its content hash as the
    # data version, so the UI shows the script that is there instead of "Never materialized".
    script = key(PROJECT, SCRIPT)
    assert [part for k, part in rows if k == script.to_string()] == [None]
    latest = studio.instance.get_latest_materialization_event(script)
    assert latest is not None and latest.asset_materialization is not None
    assert latest.asset_materialization.tags[DATA_VERSION_TAG] == file_digest(
        studio.folder / "script.md"
    )
    assert len(rows) == N * len(PER_SENTENCE) + len(PER_PROJECT) + 1


def test_dynamic_partitions_are_rows_in_postgres(studio: Studio) -> None:
    name = partitions_name(PROJECT)
    rows = studio.server.query(
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s ORDER BY id",
        name,
    )
    in_sql = [part for (part,) in rows]
    assert set(in_sql) == _sentence_ids(studio)
    assert studio.instance.get_dynamic_partitions(name) == in_sql


def test_pool_limits_are_rows_in_postgres(studio: Studio) -> None:
    rows = dict(studio.server.query('SELECT concurrency_key, "limit" FROM concurrency_limits'))
    assert {"gpu", "tts", "render"} <= set(rows)
    for pool in ("gpu", "tts", "render"):
        info = studio.instance.event_log_storage.get_concurrency_info(pool)
        assert info.slot_count == rows[pool], pool


def test_no_sqlite_storage_in_dagster_home(studio: Studio) -> None:
    home = studio.home
    assert not (home / "history").exists()
    assert not (home / "schedules").exists()
    assert sorted(home.rglob("*.db")) == []
    for path in home.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"SQLite format 3\x00"), path


def test_rendered_files_exist(studio: Studio) -> None:
    for sid in _sentence_ids(studio):
        for name in SENTENCE_FILES:
            path = studio.folder / "sentences" / sid / name
            assert path.is_file() and path.stat().st_size > 0, path
    for name in PROJECT_FILES:
        path = studio.folder / name
        assert path.is_file() and path.stat().st_size > 0, path
    export = studio.root / "exports" / PROJECT
    meta = json.loads((export / "metadata.json").read_text(encoding="utf-8"))
    assert meta


def test_the_daemon_heartbeats_into_postgres(studio: Studio, tmp_path: Path) -> None:
    """`dagster-daemon run` on the studio's workspace writes every required daemon's heartbeat
    into PostgreSQL."""
    instance = studio.instance
    required = set(instance.get_required_daemon_types())
    assert required
    started = time.time()
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-w", str(WORKSPACE_YAML)],
            env=studio.env,
            cwd=str(REPO),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and daemon.poll() is None:
            seen = {
                t: h.timestamp
                for t, h in instance.get_daemon_heartbeats().items()
                if h.timestamp >= started
            }
            if required <= set(seen):
                break
            time.sleep(0.5)
    finally:
        try:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        except ProcessLookupError:
            daemon.wait(timeout=30)
    err = log.read_text(errors="replace")[-3000:]
    assert required <= set(seen), f"heartbeats of {sorted(seen)}, need {sorted(required)}\n{err}"
    in_sql = {t for (t,) in studio.server.query("SELECT daemon_type FROM daemon_heartbeats")}
    assert required <= in_sql
    assert not (studio.home / "history").exists()
    assert sorted(studio.home.rglob("*.db")) == []
