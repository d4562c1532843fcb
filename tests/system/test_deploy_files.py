"""The service started from exactly the files the Dockerfile copies, as its CMD starts it.

Both healthcheck commands are run against it. The offline checks of the Dockerfile and
compose.yaml, and the helpers used here, are in tests/unit/test_deploy_files.py.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx

from harness import ROOT
from harness.ports import free_port
from tests.system.servers import BASE_ENV
from tests.unit.test_deploy_files import (
    NODE_MODULES,
    compose,
    dockerignored,
    final_stage_copies,
    instructions,
    run,
)


def image_layout(tmp_path: Path) -> Path:
    """A folder laid out like the image's /app, following the Dockerfile's COPY lines with
    Docker's rules (a folder's contents are copied; .dockerignore applies)."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()

    def ignored(folder: str, names: list[str]) -> list[str]:
        relative = Path(folder).relative_to(ROOT)
        return [name for name in names if dockerignored(str(relative / name))]

    for sources, destination in final_stage_copies():
        target = app_dir / destination
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=ignored, dirs_exist_ok=True)
            elif destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target / Path(source).name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)
    if NODE_MODULES.is_dir():  # what the graphiql stage's `npm ci` makes from the same lock
        shutil.copytree(NODE_MODULES, app_dir / "web" / "graphiql" / "node_modules", symlinks=True)
    return app_dir


def healthchecks(port: int) -> list[list[str]]:
    """The Dockerfile's and compose.yaml's healthchecks (exec form), aimed at `port`."""
    (dockerfile_check,) = [c.value for c in instructions() if c.cmd == "HEALTHCHECK"]
    compose_check = compose()["services"]["app"]["healthcheck"]["test"]
    commands = []
    for check in (dockerfile_check, compose_check):
        assert check[0] == "CMD"
        assert check[1] == "python"
        commands.append(
            [sys.executable, *(part.replace(":8000/", f":{port}/") for part in check[2:])]
        )
    return commands


def test_service_runs_from_the_files_the_image_holds(tmp_path: Path) -> None:
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for name in ("api", "models", "main.py"):
        # The project must come from the layout, not from an installed copy.
        assert not (site_packages / name).exists(), f"{name} is installed in {site_packages}"
    (cmd,) = [c.value for c in instructions() if c.cmd == "CMD"]
    port = free_port()
    arguments = [*cmd[1:]]
    arguments[arguments.index("--host") + 1] = "127.0.0.1"
    arguments[arguments.index("--port") + 1] = str(port)
    env = {
        "PATH": os.environ.get("PATH", ""),
        # -S below skips site-packages' .pth files, so the editable install of this checkout
        # cannot stand in for a file the Dockerfile forgot to copy.
        "PYTHONPATH": str(site_packages),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        **BASE_ENV,
    }
    app_dir = image_layout(tmp_path)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-S", "-m", cmd[0], *arguments],
            cwd=app_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

        with httpx.Client(base_url=base) as http:
            body = {"secret": "s", "passphrase": "p"}
            key = http.post("/generate", json=body).json()["secret_key"]
            revealed = http.post(f"/secrets/{key}", json={"passphrase": "p"})
            assert revealed.json() == {"secret": "s"}
            assert http.get("/docs").status_code == 200
            assert http.get("/metrics").status_code == 200
            graphiql = http.get("/graphql", headers={"accept": "text/html"})
            assert graphiql.status_code == 200
            if NODE_MODULES.is_dir():
                assert "files are not installed" not in graphiql.text

        for check in healthchecks(port):
            assert run(*check).returncode == 0, check
    finally:
        process.terminate()
        process.wait(timeout=30)
    for check in healthchecks(port):
        assert run(*check).returncode != 0, "a healthcheck passed with nothing listening"
