"""A client process for the receipt races: `python -m tests.system.receipt_racer PLAN RESULTS`.

The plan (JSON) names the service, this process's action (reveal, burn or revoke) and the
secrets. Once every racer is ready they are told one start time (`tests.system.racing`); every
secret has its moment, `start + position * spacing_seconds`, the same in every process, so
the processes race on every secret however fast each of them runs. Even
positions go through REST, odd ones through GraphQL. One JSON record per secret goes to
RESULTS: whether this process's action won the secret.
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.system.racing import wait_for_start

REVOKE = "mutation($k: String!) { revokeSecret(receiptKey: $k) { ... on Receipt { status } } }"
REVEAL = (
    "mutation($k: String!, $p: String!) { revealSecret(secretKey: $k, passphrase: $p) "
    "{ __typename } }"
)
BURN = (
    "mutation($k: String!, $p: String!) { burnSecret(secretKey: $k, passphrase: $p) "
    "{ __typename } }"
)


async def _act(http: httpx.AsyncClient, action: str, graphql: bool, secret: dict[str, str]) -> bool:
    """Do `action` until it is answered; say whether it won (503: every attempt was in flight)."""
    while True:
        try:
            return await _act_once(http, action, graphql, secret)
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 503:
                raise
            await asyncio.sleep(float(error.response.headers["retry-after"]))


async def _act_once(
    http: httpx.AsyncClient, action: str, graphql: bool, secret: dict[str, str]
) -> bool:
    key, receipt_key, passphrase = secret["key"], secret["receipt_key"], secret["passphrase"]
    if graphql:
        query, variables = {
            "reveal": (REVEAL, {"k": key, "p": passphrase}),
            "burn": (BURN, {"k": key, "p": passphrase}),
            "revoke": (REVOKE, {"k": receipt_key}),
        }[action]
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        data = response.json()["data"]
        if action == "revoke":
            return bool(data["revokeSecret"]["status"] == "REVOKED")
        return bool(data[f"{action}Secret"]["__typename"] in ("RevealedSecret", "BurnedSecret"))
    if action == "revoke":
        response = await http.delete(f"/receipts/{receipt_key}")
        response.raise_for_status()
        return bool(response.json()["status"] == "revoked")
    if action == "reveal":
        response = await http.post(f"/secrets/{key}", json={"passphrase": passphrase})
    else:
        response = await http.request("DELETE", f"/secrets/{key}", json={"passphrase": passphrase})
    if response.status_code == 404:
        return False
    response.raise_for_status()
    return True


async def _race(plan: dict[str, Any]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=plan["url"], timeout=60) as http:
        (await http.get("/healthz")).raise_for_status()
        start_at = await wait_for_start()

        async def at_its_moment(position: int, secret: dict[str, str]) -> dict[str, Any]:
            moment = start_at + position * plan["spacing_seconds"]
            await asyncio.sleep(max(0.0, moment - time.time()))
            sent_at = time.time()
            won = await _act(http, plan["action"], position % 2 == 1, secret)
            return {"key": secret["key"], "won": won, "sent_at": sent_at, "at": time.time()}

        return await asyncio.gather(
            *(at_its_moment(position, secret) for position, secret in enumerate(plan["secrets"]))
        )


def main() -> None:
    """Read the plan, race, write the results."""
    plan_path, results_path = sys.argv[1:3]
    plan = json.loads(Path(plan_path).read_text())
    Path(results_path).write_text(json.dumps(asyncio.run(_race(plan))))


if __name__ == "__main__":
    main()
