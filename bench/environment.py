"""What the run ran on: the machine, the software versions, the commit."""

import platform
import subprocess
from importlib import metadata
from typing import Any

import psutil

from harness import ROOT

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "sqlmodel",
    "asyncpg",
    "libpass",
    "argon2-cffi",
    "argon2-cffi-bindings",
    "cryptography",
    "strawberry-graphql",
    "psutil",
    "matplotlib",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*arguments: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603
            ["git", *arguments],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def describe() -> dict[str, Any]:
    """Describe the machine, Python, package versions and commit of this run."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu": _cpu_model(),
        "cores": psutil.cpu_count() or 1,
        "memory_gib": psutil.virtual_memory().total / 1024**3,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "commit": (_git("rev-parse", "--short", "HEAD") or "unknown")
        + (" + changes" if dirty else ""),
    }
