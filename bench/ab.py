"""The A/B of hand-written infrastructure: a reference commit's service against this tree's.

The hand-written contender is the service code of a reference commit (`BENCH_AB_REF`, by
default the last commit with the hand-written pieces), extracted with `git archive` into a
temporary directory and served by uvicorn started in that directory; the library contender
is this tree. Each server's start-up imports are logged (`PYTHONPROFILEIMPORTTIME`), and a
round counts only if its server imported modules that exist in its own tree and not in the
other one: the editable install of this tree must not have slipped in.
"""

import contextlib
import io
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.stats import percentile
from harness import ROOT

REF_ENV = "BENCH_AB_REF"
LIBRARY_REF_ENV = "BENCH_AB_LIBRARY_REF"
# The commit that replaced the hand-written pieces by the libraries, and changed nothing
# else that costs CPU: later commits add work of their own (receipts), which would be
# counted against the libraries if this tree were the other contender.
DEFAULT_LIBRARY_REF = "c338a63"
# The last commit with the hand-written pieces.
DEFAULT_REF = "a11e081"
HAND_WRITTEN, LIBRARIES = "hand-written", "libraries"
# The 5% rule: a hand-written piece stays only if it is at least this much ahead.
KEEP_MARGIN = 0.05
# What each contender runs instead of the other, and the module of the reference that holds
# the hand-written piece; the report prints them.
PIECES: tuple[tuple[str, str, str, str], ...] = (
    (
        "PostgreSQL access",
        "api.pgpool",
        "an asyncpg pool of our own (`api/pgpool.py`) fed SQL compiled once by SQLAlchemy "
        "(`AsyncpgDatabase` in `api/database.py`)",
        "SQLAlchemy's async engine and pool over asyncpg, autocommit (`api/storage/database.py`)",
    ),
    (
        "Rate-limit storage",
        "api.local_limits",
        "a lock-free subclass of `limits`' memory storage (`api/local_limits.py`)",
        "`limits`' `MemoryStorage`",
    ),
    (
        "Route label of the metrics",
        "api.route_label",
        "the route template rebuilt from the path (`api/route_label.py`)",
        'Starlette\'s `scope["route"].path`',
    ),
)
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s+(?P<module>[\w.]+)\s*$")


def reference() -> str:
    """Return the git revision the hand-written contender runs: `BENCH_AB_REF` or the default."""
    return os.environ.get(REF_ENV, DEFAULT_REF)


def library_reference() -> str:
    """Return the git revision the library contender runs: `BENCH_AB_LIBRARY_REF` or default."""
    return os.environ.get(LIBRARY_REF_ENV, DEFAULT_LIBRARY_REF)


def resolve(ref: str) -> str | None:
    """Return the full commit id of `ref`, or None when this checkout does not have it."""
    try:
        done = subprocess.run(  # noqa: S603
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # no git at all, as in a container image
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


@contextlib.contextmanager
def extracted(commit: str) -> Iterator[Path]:
    """Extract the files of `commit` into a temporary directory; remove it afterwards.

    `git archive` rather than `git worktree add`: it leaves the repository's state alone, and
    a run that dies leaves at most a directory in the system's temporary space.
    """
    directory = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    try:
        archive = subprocess.run(  # noqa: S603
            ["git", "archive", "--format=tar", commit],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(directory, filter="data")
            else:  # Python 3.11 before 3.11.4; the archive is this repository's own
                tar.extractall(directory)  # noqa: S202
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def server_env(tree: Path) -> dict[str, str]:
    """Return what a server needs, beyond the service settings, to run the code in `tree`."""
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    if tree != ROOT:
        # The working directory already comes first on `sys.path`; this keeps it so even if
        # uvicorn stopped adding it.
        env["PYTHONPATH"] = str(tree)
    return env


def check_source(tree: Path) -> None:
    """Fail unless a Python started as the server is (in `tree`) imports `api` from `tree`."""
    done = subprocess.run(
        [sys.executable, "-c", "import api; print(api.__file__)"],
        cwd=tree,
        env={**os.environ, **server_env(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    origin = Path(done.stdout.strip()).resolve()
    if not origin.is_relative_to(tree.resolve()):
        raise RuntimeError(f"a server started in {tree} would import api from {origin}")


def api_modules(tree: Path) -> set[str]:
    """Return the dotted names of every module of the `api` package in `tree`."""
    names = set()
    for path in (tree / "api").rglob("*.py"):
        parts = path.relative_to(tree).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_api_modules(log: Path) -> set[str]:
    """Return the `api` modules a server's processes imported, read from its import-time log."""
    found = set()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _IMPORT_LINE.match(line)
        if match and (match["module"] == "api" or match["module"].startswith("api.")):
            found.add(match["module"])
    return found


def check_imports(log: Path, own: set[str], other: set[str]) -> list[str]:
    """Return the modules that prove the server imported its own tree; fail if it did not.

    `own` and `other` are the `api` modules of the server's tree and of the other contender's.
    """
    imported = imported_api_modules(log)
    foreign = sorted(imported - own)
    distinct = sorted(imported - other)
    if not imported:
        raise RuntimeError(f"{log.name}: the server logged no import of api")
    if foreign:
        raise RuntimeError(f"{log.name}: the server imported modules of the other tree: {foreign}")
    if own != other and not distinct:
        raise RuntimeError(f"{log.name}: nothing the server imported is unique to its tree")
    return distinct


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool one contender's rounds: medians of the rates, percentiles of every latency."""
    latencies: dict[str, list[float]] = {}
    for run in runs:
        for name, values in run.pop("latencies_ms_raw", {}).items():
            latencies.setdefault(name, []).extend(values)
    errors: dict[str, int] = {}
    for run in runs:
        for name, count in {**run["errors"], **run["healthz_errors"]}.items():
            errors[name] = errors.get(name, 0) + count
    return {
        "rounds": [run["cycles_per_second"] for run in runs],
        "cycles_per_second": statistics.median(run["cycles_per_second"] for run in runs),
        "worker_cpu_ms_per_cycle": statistics.median(
            run["cpu_ms_per_cycle"]["workers"] for run in runs
        ),
        "reveal_p99_ms": percentile(latencies.get("reveal", []), 0.99),
        "create_p99_ms": percentile(latencies.get("create", []), 0.99),
        "reveals": len(latencies.get("reveal", [])),
        "errors": errors,
        "runs": runs,
    }


def _ratio(numerator: float, denominator: float) -> float:
    # NaN compares false both ways, so a contender with nothing measured is never kept.
    return numerator / denominator if denominator else math.nan


def verdict(ab: dict[str, Any]) -> dict[str, Any]:
    """Hand-written ÷ libraries for cycles/s and reveal p99, and whether to keep the former."""
    hand, libraries = ab["contenders"][HAND_WRITTEN], ab["contenders"][LIBRARIES]
    cycles = _ratio(hand["cycles_per_second"], libraries["cycles_per_second"])
    reveal = _ratio(hand["reveal_p99_ms"], libraries["reveal_p99_ms"])
    cycles_ahead = cycles >= 1 + KEEP_MARGIN
    # Latency is ahead when it is lower: at most 95% of the library's.
    reveal_ahead = reveal <= 1 - KEEP_MARGIN
    return {
        "cycles_ratio": cycles,
        "reveal_p99_ratio": reveal,
        "cycles_ahead": cycles_ahead,
        "reveal_p99_ahead": reveal_ahead,
        "keep_hand_written": cycles_ahead or reveal_ahead,
    }
