"""The service with its argon2 on the event loop, as the naive baseline hashes: an A/B.

`uvicorn bench.hash_on_loop:app` serves `main:app` unchanged but for one thing: its hasher
runs every hash inline, on the worker's event loop, as `api.domain.hashing` does only for
parameters too cheap to be worth a thread. The head-to-head rounds run it beside the
service and the baseline, which splits the gap between those two:

- this ÷ baseline is what the service's own work costs (encryption, receipts, the quota,
  the attempt claims, admission, metrics), with the hashes arranged as the baseline's are;
- service ÷ this is what hashing beside the event loop costs instead of on it, the price of
  the service's responsiveness: here every other request on a worker waits behind a hash,
  which the `/healthz` column of the rounds shows.

It is not a way to run the service: the shipped code never hashes on the loop at real cost.
"""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api.app import create_app
from api.settings import load_settings

app = create_app(load_settings())
_serve = app.router.lifespan_context


@contextlib.asynccontextmanager
async def _lifespan(served: FastAPI) -> AsyncIterator[None]:
    async with _serve(served):
        served.state.hasher.runs_inline = True
        yield


app.router.lifespan_context = _lifespan
