"""`/metrics`, the exporter on METRICS_PORT and the multiprocess mode."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.base import Delivery
from proca_server.metrics import start_metrics_server
from proca_server.workers import WorkerDeps
from proca_server.workers.webhook import deliver_batch
from tests.local_http import free_port
from tests.workers.conftest import Peer, org_with_backends


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_metrics_answers_and_a_delivery_moves_its_counter(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    before = sample(response.text, "proca_messages_delivered_total", worker="webhook")
    assert "proca_processing_lag_seconds" in response.text

    org_id = await org_with_backends(session, push={"name": "webhook", "host": peer.url})
    body = json.dumps({"schema": "proca:action:2", "actionId": 1}).encode()
    queue = f"wrk.{org_id}.webhook"
    assert await deliver_batch(deps, org_id, [Delivery(queue, body, "", queue)]) == [None]

    after = (await client.get("/metrics")).text
    assert sample(after, "proca_messages_delivered_total", worker="webhook") == before + 1


async def test_with_metrics_port_the_metrics_move_to_their_own_port(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("METRICS_PORT", str(port))
    assert (await client.get("/metrics")).status_code == 404
    server = start_metrics_server()
    assert server is not None and server.port == port
    try:
        # the port is taken: another process serves it
        assert start_metrics_server() is None
        async with httpx.AsyncClient() as outside:
            response = await outside.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert "proca_actions_received_total" in response.text
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.slow  # three Python processes
async def test_multiprocess_mode_sums_the_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from proca_server.metrics import ACTIONS_RECEIVED as m;"
        "m.labels(kind='addAction').inc(); m.labels(kind='addActionContact').inc(2)"
    )
    show = "import sys; from proca_server.metrics import render_metrics as r;"
    show += "sys.stdout.write(r().decode())"
    outputs = []
    for program in (count, count, show):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            program,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()
        outputs.append(out.decode())
    text = outputs[-1]
    assert sample(text, "proca_actions_received_total", kind="addAction") == 2
    assert sample(text, "proca_actions_received_total", kind="addActionContact") == 4
