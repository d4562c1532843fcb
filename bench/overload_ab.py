"""`python -m bench.overload_ab REF [ROUNDS]`: the overload scenario, this tree against REF.

For a change to the create or reveal path: at the default argon2, each round runs 16
connections (saturation) and 512 (32x, admission on) against REF's code and this tree's,
in alternating order, each on a fresh database, and prints the goodput of each and the
ratios. Run it on a quiet machine; `scripts/bench` is the full report.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

from bench import ab, database, scenarios, servers
from bench.__main__ import _admission_timeout, _server_env, _service_argon2
from bench.servers import ROOT

CONNECTIONS = (16, 512)


async def _round(tree: Path, label: str, workdir: Path) -> dict[int, float]:
    memory, time_cost, parallelism = _service_argon2()
    argon2 = {
        "ARGON2_MEMORY_KIB": str(memory),
        "ARGON2_TIME_COST": str(time_cost),
        "ARGON2_PARALLELISM": str(parallelism),
    }
    name = await database.create_database()
    goodput = {}
    try:
        url = database.sqlalchemy_url(name)
        for connections in CONNECTIONS:
            run = scenarios.Overload(connections, _admission_timeout())
            env = _server_env(url, argon2) | run.env | ab.server_env(tree)
            tag = f"{label}-{connections}"
            with servers.running("main:app", env, workdir / f"{tag}.log", cwd=tree) as server:
                result = await scenarios.overload(server, scenarios.FULL, run, workdir, tag)
            goodput[connections] = float(result["goodput"])
            print(f"[overload-ab] {tag}: {goodput[connections]:.1f} cycles/s", flush=True)
    finally:
        await database.drop_database(name)
    return goodput


async def main(ref: str, rounds: int) -> None:
    """Run the rounds and print each side's goodput and the ratios."""
    commit = ab.resolve(ref)
    if commit is None:
        raise SystemExit(f"unknown ref {ref!r}")
    workdir = Path(tempfile.mkdtemp(prefix="overload-ab-"))
    runs: dict[str, list[dict[int, float]]] = {"ref": [], "tree": []}
    with ab.extracted(commit) as extracted:
        trees = [("ref", extracted), ("tree", ROOT)]
        for number in range(rounds):
            for side, tree in trees if number % 2 == 0 else trees[::-1]:
                runs[side].append(await _round(tree, f"{side}-{number + 1}", workdir))
    for connections in CONNECTIONS:
        ref_mean = sum(run[connections] for run in runs["ref"]) / rounds
        tree_mean = sum(run[connections] for run in runs["tree"]) / rounds
        print(
            f"[overload-ab] {connections} connections: {ref} {ref_mean:.1f}, this tree "
            f"{tree_mean:.1f} cycles/s, tree / ref {tree_mean / ref_mean:.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2))
