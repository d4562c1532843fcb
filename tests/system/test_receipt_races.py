"""Reveal, burn and revoke race across processes: one winner per secret, named by its receipt.

A real uvicorn with two workers serves each database; three client processes (one reveals,
one burns, one revokes, half the secrets through REST and half through GraphQL) act on every
secret at the same planned moment, over many rounds, once all three are ready. How many
secrets saw all three calls in flight at once is counted and printed; at least one must have.
"""

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.racing import create_for_race, run_racers
from tests.system.servers import run_server

ROUNDS = 120
ACTIONS = ("reveal", "burn", "revoke")
STATUS_OF = {"reveal": "revealed", "burn": "burned", "revoke": "revoked"}
PASSPHRASE = "race-passphrase"


def test_reveal_burn_and_revoke_race_across_processes(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"DATABASE_URL": database_url, "SERVER_LOG": str(tmp_path / "uvicorn.log")}
    with run_server(env, workers=2) as server:
        secrets = create_for_race(server.url, ROUNDS, PASSPHRASE)
        plans = [
            {
                "url": server.url,
                "action": action,
                "secrets": secrets,
                "spacing_seconds": 0.03,
            }
            for action in ACTIONS
        ]
        won: dict[str, list[str]] = {secret["key"]: [] for secret in secrets}
        overlaps = 0
        records: dict[str, list[dict[str, Any]]] = {}
        for action, results in zip(ACTIONS, run_racers(plans, tmp_path), strict=True):
            for record in results:
                records.setdefault(record["key"], []).append(record)
                if record["won"]:
                    won[record["key"]].append(action)
        for calls in records.values():
            # Raced: every call was sent before the first one was answered.
            if max(call["sent_at"] for call in calls) < min(call["at"] for call in calls):
                overlaps += 1
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for secret in secrets:
                winners = won[secret["key"]]
                assert len(winners) == 1, (secret["key"], winners)
                receipt = http.get(f"/receipts/{secret['receipt_key']}").json()
                assert receipt["status"] == STATUS_OF[winners[0]]
                assert receipt["closed_at"] is not None
        tally = Counter(actions[0] for actions in won.values())
        with capsys.disabled():
            print(
                f"\nreceipt race [{database_url.split(':')[0]}]: winners {dict(tally)}, "
                f"all three calls in flight at once for {overlaps} of {ROUNDS} secrets"
            )
        # The race was run: how often, and which action won, is the machine's doing.
        assert overlaps > 0, "no secret saw its three calls in flight at once"
