"""Where the workers' CPU goes: py-spy samples of each worker, summarised.

py-spy attaches to the running workers (after start-up, so imports do not count) and
records folded stacks of the threads that are on the CPU. The summary gives the share of
samples spent in a few operations the issue cares about (argon2, the database round trips,
the thread hand-off, ...) and the functions with the most time of their own.
"""

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# (label, where to look, pattern): "stack" matches any frame, "self" only the innermost.
OPERATIONS: tuple[tuple[str, str, str], ...] = (
    ("argon2 hash / verify", "stack", r"\(argon2/|passlib/handlers/argon2"),
    ("thread-pool hand-off (submit)", "stack", r"^ThreadPoolExecutor\.submit "),
    ("database, all (SQLAlchemy, asyncpg, pools)", "stack", r"\((sqlalchemy|asyncpg)/"),
    ("… SQLAlchemy", "stack", r"\(sqlalchemy/"),
    ("… connection pool checkout and return", "stack", r"\((sqlalchemy/pool|asyncpg/pool\.py)"),
    ("… statements on the wire (asyncpg protocol)", "stack", r"^Connection\._do_execute \(asyncpg"),
    ("… pool pre-ping (SELECT 1 per checkout)", "stack", r"_async_ping|do_ping"),
    ("… BEGIN", "stack", r"^Transaction\.start \(asyncpg"),
    ("… COMMIT", "stack", r"^Transaction\.(__)?commit \(asyncpg"),
    ("… ORM unit of work (flush)", "stack", r"^Session\._flush "),
    ("AES-GCM + HKDF (api/domain/crypto.py)", "stack", r"\(api/domain/crypto\.py"),
    ("logging", "stack", r"\(logging/"),
    ("Prometheus metrics", "stack", r"\(prometheus_client/"),
    (
        "api middlewares (own time)",
        "self",
        r"\(api/(telemetry/logs|telemetry/metrics|http/security_headers|http/body_limit)\.py",
    ),
    ("rate limiting (limits)", "stack", r"\(limits/"),
    ("pydantic validation / serialisation", "stack", r"\(pydantic"),
    ("FastAPI dependency solving", "stack", r"^solve_dependencies "),
    ("uvicorn HTTP protocol (own time)", "self", r"\(uvicorn/"),
    ("event loop and asyncio (own time)", "self", r"\(asyncio/|^Runner\.run "),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    """Whether py-spy is installed next to this Python or on the PATH."""
    return _py_spy() is not None


def record(
    pids: list[int], seconds: float, out_dir: Path, label: str
) -> list[subprocess.Popen[bytes]]:
    """Start py-spy on every pid for `seconds`; the caller waits for the processes."""
    spy = _py_spy() or "py-spy"
    processes = []
    for pid in pids:
        out = out_dir / f"{label}-{pid}.folded"
        command = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ]
        log = (out_dir / f"{label}-{pid}.pyspy.log").open("wb")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
    return processes


def _stacks(paths: list[Path]) -> list[tuple[list[str], int]]:
    stacks = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
            stacks.append((frames, int(count)))
    return stacks


def summarize(paths: list[Path], top: int = 12) -> dict[str, Any]:
    """Shares of samples per operation and the functions with most self time."""
    stacks = _stacks(paths)
    total = sum(count for _, count in stacks)
    operations: Counter[str] = Counter()
    own: Counter[str] = Counter()
    patterns = [(label, where, re.compile(pattern)) for label, where, pattern in OPERATIONS]
    for frames, count in stacks:
        frames = [frame for frame in frames if frame]
        if not frames:
            continue
        own[frames[-1]] += count
        for label, where, pattern in patterns:
            candidates = frames[-1:] if where == "self" else frames
            if any(pattern.search(frame) for frame in candidates):
                operations[label] += count
    return {
        "samples": total,
        "operations": {
            label: operations[label] / total if total else 0.0 for label, _, _ in OPERATIONS
        },
        "top_self": [
            {"function": _short(frame), "share": count / total}
            for frame, count in own.most_common(top)
        ],
    }


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    return f"{match['function']} ({match['file']})" if match else frame
