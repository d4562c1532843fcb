"""A client process for the quota race: `python -m tests.system.create_racer PLAN RESULTS`.

The plan (JSON) names the service and how many creates to send; they all go at once when
every racer is ready and the start is given (`tests.system.racing`). Even-numbered creates go
through REST, odd ones through GraphQL. One JSON record per create goes to RESULTS:
`created` (with the key) or `full` (refused by the quota), when it was sent and when it was
answered. Any other answer fails the process.
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.system.racing import wait_for_start

CREATE = (
    "mutation($s: String!, $p: String!) { createSecret(secret: $s, passphrase: $p) "
    "{ __typename ... on CreatedSecret { secretKey } } }"
)


async def _create(
    http: httpx.AsyncClient, graphql: bool, secret: str, passphrase: str
) -> tuple[str, str | None]:
    """Return ("created", its key) or ("full", None)."""
    if graphql:
        variables = {"s": secret, "p": passphrase}
        response = await http.post("/graphql", json={"query": CREATE, "variables": variables})
        body = response.json()
        if response.status_code == 507:
            assert body["errors"][0]["extensions"]["code"] == "STORAGE_QUOTA_REACHED", body
            return "full", None
        assert body["data"]["createSecret"]["__typename"] == "CreatedSecret", body
        return "created", body["data"]["createSecret"]["secretKey"]
    response = await http.post("/generate", json={"secret": secret, "passphrase": passphrase})
    if response.status_code == 507:
        assert response.json() == {"detail": "Storage quota reached"}
        return "full", None
    assert response.status_code == 200, response.text
    return "created", response.json()["secret_key"]


async def _race(plan: dict[str, Any]) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=plan["count"])
    async with httpx.AsyncClient(base_url=plan["url"], timeout=60, limits=limits) as http:
        (await http.get("/healthz")).raise_for_status()
        await wait_for_start()

        async def one(number: int) -> dict[str, Any]:
            sent_at = time.time()
            outcome, key = await _create(http, number % 2 == 1, plan["secret"], plan["passphrase"])
            return {"outcome": outcome, "key": key, "sent_at": sent_at, "at": time.time()}

        return await asyncio.gather(*(one(number) for number in range(plan["count"])))


def main() -> None:
    """Read the plan, race, write the results."""
    plan_path, results_path = sys.argv[1:3]
    plan = json.loads(Path(plan_path).read_text())
    Path(results_path).write_text(json.dumps(asyncio.run(_race(plan))))


if __name__ == "__main__":
    main()
