"""Another commit's code, served beside this tree's in one run (`bench.oracle --against`).

The commit's files are extracted with `git archive` into a temporary directory, and uvicorn
is started in that directory, so the server imports that commit's `api`.
"""

import contextlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness import ROOT


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
    directory = Path(tempfile.mkdtemp(prefix="bench-tree-"))
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
    env = {}
    if tree != ROOT:
        # The working directory already comes first on `sys.path`; this keeps it so even if
        # uvicorn stopped adding it.
        env["PYTHONPATH"] = str(tree)
    return env
