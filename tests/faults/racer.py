"""A client process for the race test: `python -m tests.faults.racer PLAN RESULTS`.

The plan (JSON) names the service, the secrets and how many reveals to send for each; the
process waits for the plan's start time, so that several such processes start together,
then reveals every secret that many times, mixing REST GET, REST POST and GraphQL, and
writes one JSON record per call to RESULTS.
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.faults.client import REVEAL_TRANSPORTS, HttpClient, Outcome, reveal


async def _race(plan: dict[str, Any]) -> list[dict[str, Any]]:
    http = HttpClient(plan["url"], timeout=plan.get("timeout", 60))
    slots = asyncio.Semaphore(plan["concurrency"])
    offset = plan["client"]

    async def one(index: int, key: str, passphrase: str) -> dict[str, Any]:
        transport = REVEAL_TRANSPORTS[(index + offset) % len(REVEAL_TRANSPORTS)]
        async with slots:
            sent_at = time.time()
            outcome: Outcome = await reveal(http, transport, key, passphrase)
        return {
            "key": key,
            "client": offset,
            "transport": transport,
            "sent_at": sent_at,
            **outcome.as_dict(),
        }

    calls = [
        one(index, key, passphrase)
        for key, passphrase in plan["secrets"]
        for index in range(plan["reveals_per_secret"])
    ]
    await asyncio.sleep(max(0.0, plan["start_at"] - time.time()))
    return await asyncio.gather(*calls)


def main() -> None:
    """Read the plan, race, write the results."""
    plan_path, results_path = sys.argv[1:3]
    plan = json.loads(Path(plan_path).read_text())
    results = asyncio.run(_race(plan))
    Path(results_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
