"""Contract: a non-editable install works outside a checkout.

The wheel built from the source tree carries everything the studio reads at run time (the
shipped ComfyUI workflows, the Dagster instance defaults and workspace, the styles, the demo).
Installed into a fresh virtual environment, away from the checkout, `videogen demo` renders the
sample project, `videogen workflows` lists the shipped registry, and `videogen ui` starts a
webserver that answers HTTP. The package is imported from the new environment's site-packages
(asserted on ``videogen.__file__``), not from the checkout; its dependencies are made visible
from the current environment through a ``.pth`` file, so the test installs nothing from an
index and stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import av
import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

_SKIP_COPY = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "studio", "test-artifacts",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", "tests", "benchmarks", "docs",
)  # fmt: skip


def _build_wheel(out: Path, tmp: Path) -> Path:
    """Build the wheel from a copy of the source tree (the checkout gets no build files)."""
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_SKIP_COPY)
    if importlib.util.find_spec("pip") is not None:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    elif shutil.which("uv"):
        cmd = ["uv", "build", "--wheel", "--out-dir", str(out), str(src)]
    else:
        pytest.skip("neither pip nor uv is available to build the wheel")
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    [wheel] = out.glob("videogen_studio-*.whl")
    return wheel


def _fresh_env(where: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed (no dependencies) and the current environment's
    site-packages appended to its path for them. Returns its bin folder."""
    has_pip = importlib.util.find_spec("ensurepip") is not None and shutil.which("uv") is None
    venv.EnvBuilder(with_pip=has_pip, symlinks=True).create(where)
    python = where / "bin" / "python"
    if has_pip:
        cmd = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    else:
        cmd = ["uv", "pip", "install", "-q", "--python", str(python), "--no-deps", str(wheel)]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # Appended after the new site-packages: the installed wheel wins over anything there, and
    # the .pth files of those folders (an editable install's finder) are not run.
    (Path(purelib) / "_deps_from_test_env.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    return where / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_built_wheel_installed_elsewhere_renders_and_serves(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "wheel", tmp_path)
    bin_dir = _fresh_env(tmp_path / "env", wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "DAGSTER_HOME", "COMFYUI_URL", "CHATTERBOX_URL",
                     "DEEPSEEK_API_KEY", "LLM_BASE_URL", "VIDEOGEN_TTS", "VIDEOGEN_WORKFLOWS",
                     "VIRTUAL_ENV")
    }  # fmt: skip
    env.update(VIDEOGEN_HOME=str(work / "studio"), VIDEOGEN_CLIP_PRESET="ultrafast")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    where = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "import videogen, videogen_assets, videogen_resources.workflows as w, "
         "videogen_assets.dagster_files as d; print(videogen.__file__); print(w.SHIPPED_ROOT); "
         "print(d.WORKSPACE_YAML)"],
        cwd=work, env=env, check=True, capture_output=True, text=True, timeout=120,
    ).stdout.split()  # fmt: skip
    site_dir = tmp_path / "env" / "lib"
    for path in where:
        assert Path(path).is_relative_to(site_dir), path
        assert not Path(path).is_relative_to(REPO), path
    assert Path(where[1], "workflows.yaml").is_file() and Path(where[2]).is_file()

    listed = subprocess.run(
        [str(bin_dir / "videogen"), "workflows"], cwd=work, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert {line.split("\t")[0] for line in listed.stdout.splitlines()} >= {
        "flux-2-v1", "wan-2.2-v1"
    }  # fmt: skip

    demo = subprocess.run(
        [str(bin_dir / "videogen"), "demo"], cwd=work, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-4000:]
    cut = Path(demo.stdout.strip().splitlines()[-1].removeprefix("rough cut: "))
    assert cut.is_file() and cut.stat().st_size > 10_000 and cut.is_relative_to(work)
    # the demo's four sections are YouTube chapters, in chapters.txt and in the MP4 itself
    chapters = (cut.parent / "chapters.txt").read_text(encoding="utf-8").splitlines()
    assert chapters[0] == "00:00 Beneath our feet" and len(chapters) == 4, chapters
    with av.open(str(cut)) as container:
        marks = [
            (ch["metadata"].get("title"), ch["start"] * ch["time_base"])
            for ch in container.chapters()
        ]
    assert [title for title, _ in marks] == [line.split(" ", 1)[1] for line in chapters]
    assert [round(start) for _, start in marks] == [
        int(line[:2]) * 60 + int(line[3:5]) for line in chapters
    ]
    assert (work / "studio" / ".dagster" / "dagster.yaml").is_file()

    port, media_port = _free_port(), _free_port()
    ui = subprocess.Popen(
        [str(bin_dir / "videogen"), "ui", "--port", str(port), "--media-port", str(media_port)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    answered = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and ui.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                answered = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5)
                if answered.status_code == 200:
                    break
            time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGTERM)
        try:
            output, _ = ui.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            output, _ = ui.communicate()
    assert answered is not None and answered.status_code == 200, output[-4000:]
    assert "dagster_webserver_version" in answered.json()
