"""Reveal, burn and revoke race across processes: one winner per secret, named by its receipt.

A real uvicorn with two workers serves each database; three client processes (one reveals,
one burns, one revokes, half the secrets through REST and half through GraphQL) act on every
secret at the same planned moment, over many rounds.
"""

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, run_server

ROUNDS = 120
ACTIONS = ("reveal", "burn", "revoke")
STATUS_OF = {"reveal": "revealed", "burn": "burned", "revoke": "revoked"}
PASSPHRASE = "race-passphrase"


def _create(base_url: str, count: int) -> list[dict[str, str]]:
    secrets = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for number in range(count):
            body = {"secret": f"raced {number}", "passphrase": PASSPHRASE}
            created = http.post("/generate", json=body).json()
            secrets.append(
                {
                    "key": created["secret_key"],
                    "receipt_key": created["receipt_key"],
                    "passphrase": PASSPHRASE,
                }
            )
    return secrets


def test_reveal_burn_and_revoke_race_across_processes(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"DATABASE_URL": database_url, "SERVER_LOG": str(tmp_path / "uvicorn.log")}
    with run_server(env, workers=2) as server:
        secrets = _create(server.base_url, ROUNDS)
        start_at = time.time() + 3  # time for three interpreters to start
        clients = []
        for action in ACTIONS:
            plan = {
                "url": server.base_url,
                "action": action,
                "secrets": secrets,
                "start_at": start_at,
                "spacing_seconds": 0.03,
            }
            plan_path = tmp_path / f"{action}-plan.json"
            plan_path.write_text(json.dumps(plan))
            results = tmp_path / f"{action}-results.json"
            command = [sys.executable, "-m", "tests.receipt_racer", str(plan_path), str(results)]
            clients.append((action, results, subprocess.Popen(command, cwd=ROOT)))  # noqa: S603
        for _, _, process in clients:
            assert process.wait(timeout=120) == 0
        won: dict[str, list[str]] = {secret["key"]: [] for secret in secrets}
        overlaps = 0
        records: dict[str, list[dict[str, Any]]] = {}
        for action, results, _ in clients:
            for record in json.loads(results.read_text()):
                records.setdefault(record["key"], []).append(record)
                if record["won"]:
                    won[record["key"]].append(action)
        for calls in records.values():
            # Raced: every call was sent before the first one was answered.
            if max(call["sent_at"] for call in calls) < min(call["at"] for call in calls):
                overlaps += 1
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            for secret in secrets:
                winners = won[secret["key"]]
                assert len(winners) == 1, (secret["key"], winners)
                receipt = http.get(f"/receipts/{secret['receipt_key']}").json()
                assert receipt["status"] == STATUS_OF[winners[0]]
                assert receipt["closed_at"] is not None
        tally = Counter(actions[0] for actions in won.values())
        with capsys.disabled():
            print(f"\nreceipt race [{database_url.split(':')[0]}]: {dict(tally)}, raced {overlaps}")
        # The race is real: most secrets saw all three calls in flight at once.
        assert overlaps >= ROUNDS * 0.8
        assert len(tally) >= 2
