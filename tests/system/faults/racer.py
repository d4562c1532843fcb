"""A client process for the race test: `python -m tests.system.faults.racer PLAN RESULTS`.

The plan (JSON) names the service, the secrets and how many reveals to send for each. Once
every racer is ready they are told one start time (`tests.system.racing`); every secret has its
moment, `start + position * spacing_seconds`, the same in every process: at that moment
each process sends all its reveals of that secret at once, mixing REST GET, REST POST and
GraphQL. So the processes race on every secret, however fast or slow each of them runs.

A 503 with `Retry-After` (every attempt left in flight, or no database connection free in
time on a busy machine) is asked again after that many seconds, as a client would: the
record holds the final answer, the span from the first send to it, and how many 503s came
before. One JSON record per call goes to RESULTS.
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.system.faults.client import REVEAL_TRANSPORTS, HttpClient, Outcome, reveal
from tests.system.racing import wait_for_start

# A service that keeps answering 503 is a failure: the last answer is recorded as it is.
MAX_RETRIES = 30


async def _race(plan: dict[str, Any]) -> list[dict[str, Any]]:
    http = HttpClient(plan["url"], timeout=plan.get("timeout", 60))
    offset = plan["client"]
    start_at = await wait_for_start()

    async def one(index: int, key: str, passphrase: str) -> dict[str, Any]:
        transport = REVEAL_TRANSPORTS[(index + offset) % len(REVEAL_TRANSPORTS)]
        sent_at = time.time()
        for retried in range(MAX_RETRIES + 1):
            outcome: Outcome = await reveal(http, transport, key, passphrase)
            if outcome.kind != "unavailable" or retried == MAX_RETRIES:
                break
            await asyncio.sleep(float(outcome.retry_after or 1))
        return {
            "key": key,
            "client": offset,
            "transport": transport,
            "sent_at": sent_at,
            **outcome.as_dict(),
            "seconds": time.time() - sent_at,
            "retried": retried,
        }

    async def secret_at_its_moment(
        position: int, key: str, passphrase: str
    ) -> list[dict[str, Any]]:
        moment = start_at + position * plan["spacing_seconds"]
        await asyncio.sleep(max(0.0, moment - time.time()))
        reveals = range(plan["reveals_per_secret"])
        return await asyncio.gather(*(one(index, key, passphrase) for index in reveals))

    per_secret = await asyncio.gather(
        *(
            secret_at_its_moment(position, key, passphrase)
            for position, (key, passphrase) in enumerate(plan["secrets"])
        )
    )
    return [record for records in per_secret for record in records]


def main() -> None:
    """Read the plan, race, write the results."""
    plan_path, results_path = sys.argv[1:3]
    plan = json.loads(Path(plan_path).read_text())
    results = asyncio.run(_race(plan))
    Path(results_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
