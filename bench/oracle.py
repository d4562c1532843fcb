"""`python -m bench.oracle [--samples N] [--against REF]`: does a guess tell what exists.

A wrong passphrase on a live secret, an unknown key and an already revealed key must all cost
the same, or the answer's timing says whether a key exists (SECURITY.md, "No existence
oracle"). This sends the three kinds one after another, interleaved so that drift in the
machine's speed touches all of them alike, to a real server at the **default** argon2
parameters, on SQLite and on PostgreSQL, and reports each kind's median and a Mann-Whitney U
test of "live" against the others. `--against REF` runs the same against another commit's
code in the same run, for a before/after.
"""

import argparse
import asyncio
import contextlib
import json
import math
import secrets
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import database, servers, trees
from harness import ROOT

KINDS = ("live", "unknown", "revealed")
RIGHT = "the right passphrase"
# A live secret takes this many wrong guesses, one short of being destroyed.
GUESSES_PER_SECRET = 4


def mann_whitney_p(first: list[float], second: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, ties averaged)."""
    pooled = sorted([(value, 0) for value in first] + [(value, 1) for value in second])
    ranks = [0.0] * len(pooled)
    start = 0
    while start < len(pooled):
        end = start
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[start][0]:
            end += 1
        for index in range(start, end + 1):
            ranks[index] = (start + end) / 2 + 1
        start = end + 1
    n1, n2 = len(first), len(second)
    rank_sum = sum(rank for rank, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u = rank_sum - n1 * (n1 + 1) / 2
    mean, deviation = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u - mean) / deviation
    return math.erfc(abs(z) / math.sqrt(2))


def _create(http: httpx.Client) -> str:
    created = http.post("/generate", json={"secret": "timing", "passphrase": RIGHT})
    created.raise_for_status()
    return str(created.json()["secret_key"])


def sample(url: str, samples: int) -> dict[str, list[float]]:
    """Time `samples` wrong guesses of each kind, interleaved; return milliseconds by kind."""
    timings: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with httpx.Client(base_url=url, timeout=60) as http:
        revealed = _create(http)
        http.post(f"/secrets/{revealed}", json={"passphrase": RIGHT}).raise_for_status()
        live, used = _create(http), 0
        for _ in range(samples):
            if used == GUESSES_PER_SECRET:
                live, used = _create(http), 0
            for kind in KINDS:
                key = {"live": live, "unknown": secrets.token_hex(16), "revealed": revealed}[kind]
                response = http.post(f"/secrets/{key}", json={"passphrase": "wrong"})
                assert response.status_code == 404, response.text
                timings[kind].append(response.elapsed.total_seconds() * 1000)
            used += 1
    return timings


def summarize(timings: dict[str, list[float]]) -> dict[str, Any]:
    """Medians by kind, and the p-value of live against each other kind."""
    return {
        "median_ms": {
            kind: round(statistics.median(values), 2) for kind, values in timings.items()
        },
        "p_live_vs": {
            kind: mann_whitney_p(timings["live"], timings[kind]) for kind in KINDS if kind != "live"
        },
    }


@contextlib.contextmanager
def _tree(ref: str | None) -> Iterator[Path]:
    if ref is None:
        yield ROOT
        return
    commit = trees.resolve(ref)
    if commit is None:
        raise SystemExit(f"no commit {ref!r} in this checkout")
    with trees.extracted(commit) as tree:
        yield tree


def run(samples: int, against: str | None) -> dict[str, Any]:
    """Sample every tree on both databases; return the summaries."""
    results: dict[str, Any] = {}
    refs = {"this tree": None} | ({f"at {against}": against} if against else {})
    for label, ref in refs.items():
        with _tree(ref) as tree, tempfile.TemporaryDirectory() as scratch:
            for backend in ("sqlite", "postgresql"):
                name = None
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{scratch}/oracle.db"
                else:
                    name = asyncio.run(database.create_database())
                    url = database.sqlalchemy_url(name)
                env = {
                    "DATABASE_URL": url,
                    "LOG_LEVEL": "WARNING",
                    "RATE_LIMIT_CREATE": "1000000/second",
                    "RATE_LIMIT_REVEAL": "1000000/second",
                    **trees.server_env(tree),
                }
                log = Path(scratch) / f"{backend}.log"
                try:
                    server = servers.start("main:app", env, log, workers=2, cwd=tree)
                    try:
                        results[f"{label}, {backend}"] = summarize(sample(server.url, samples))
                    finally:
                        servers.stop(server)
                finally:
                    if name is not None:
                        asyncio.run(database.drop_database(name))
    return results


def main() -> None:
    """Parse the arguments, run, print the summaries as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=250)
    parser.add_argument("--against", help="another commit to measure in the same run")
    arguments = parser.parse_args()
    json.dump(run(arguments.samples, arguments.against), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
