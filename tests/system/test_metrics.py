"""GET /metrics of a uvicorn process with several workers: one sum over all of them."""

import time
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from tests.api.test_metrics import value
from tests.system.servers import run_server

HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}


def healthz_served_per_worker(multiproc: Path) -> dict[str, float]:
    """GET /healthz answers per worker, each read from that worker's own file."""
    served = {}
    for path in multiproc.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if (
                    sample.name == "onetime_secrets_http_requests_total"
                    and sample.labels == HEALTHZ
                ):
                    served[path.name] = sample.value
    return served


def test_several_workers_report_one_sum(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, whichever worker answers /metrics reports every worker."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}",
        "SERVER_LOG": str(tmp_path / "uvicorn.log"),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    sent = 0
    with run_server(env, workers=2) as server:
        # Fresh connections until both workers have answered some (the second may still be
        # starting when the first is ready; the kernel then spreads connections over both).
        deadline = time.monotonic() + 60
        while len(healthz_served_per_worker(multiproc)) < 2:
            assert time.monotonic() < deadline, "one worker answered every request"
            for _ in range(10):
                with httpx.Client(base_url=server.url) as http:
                    assert http.get("/healthz").status_code == 200
                sent += 1
        totals = set()
        for _ in range(8):
            with httpx.Client(base_url=server.url) as http:
                text = http.get("/metrics").text
            totals.add(value(text, "onetime_secrets_http_requests_total", **HEALTHZ))
    assert totals == {sent}
    assert sum(healthz_served_per_worker(multiproc).values()) == sent
