"""`/metrics`: the collector reads providers, models and sockets at scrape time; a real app serves it."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
import websockets
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import MetricsCollector, build_registry
from compose import compose
from core.config import Settings
from core.records import SourceHealth
from testbed.harness import recv_until, running_app


class FakeSources:
    def health(self):
        return [
            SourceHealth(name="coingecko", category="market_data", status="active", latency_ms=120.0),
            SourceHealth(name="kraken", category="market_data", status="inactive", last_error="timeout"),
        ]

    @property
    def pools(self):
        counts = {"coingecko": (9, 1), "kraken": (0, 4)}
        return {
            "market_data": SimpleNamespace(
                state=lambda name: SimpleNamespace(successes=counts[name][0], failures=counts[name][1])
            )
        }


class FakeInference:
    def describe_models(self):
        return [
            {
                "id": "ElKulako/cryptobert",
                "status": "available",
                "calls": 20,
                "failures": 2,
                "successes": 18,
                "success_rate": 90.0,
                "avg_response_time": 50.0,
                "p95_ms": 80.0,
                "last_used": None,
            },
            {
                "id": "ProsusAI/finbert",
                "status": "failed",
                "calls": 0,
                "failures": 0,
                "success_rate": None,
                "avg_response_time": None,
                "p95_ms": None,
                "last_used": None,
            },
        ]


@pytest.fixture
def samples(tmp_path):
    parts = compose(Settings(data_dir=tmp_path, enable_ui=False, data_mode="demo"))
    feeds = FakeSources()
    parts.runtime.feeds, parts.runtime.inference = feeds, FakeInference()  # what the status reads
    collector = MetricsCollector(
        sockets=parts.sockets, counter=parts.counter, bus=parts.bus, store=parts.store, news=parts.news,
        runtime=parts.runtime, feeds=feeds, cluster=None, gc_watch=parts.gc_watch,
    )
    text = generate_latest(build_registry(collector)).decode()
    parts.store.close()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_provider_requests_errors_and_latency_come_from_the_pools(samples):
    key = (("category", "market_data"), ("provider", "coingecko"))
    assert samples[("hub_provider_requests_total", key)] == 10
    assert samples[("hub_provider_errors_total", key)] == 1
    assert samples[("hub_provider_latency_ms", key)] == 120.0
    assert samples[("hub_provider_status", (("category", "market_data"), ("provider", "kraken")))] == 0.0


def test_model_calls_failures_and_latency_summary_come_from_the_models(samples):
    model = (("model", "ElKulako/cryptobert"),)
    assert samples[("hub_model_calls_total", model)] == 20
    assert samples[("hub_model_failures_total", model)] == 2
    assert samples[("hub_model_latency_ms_count", model)] == 18
    assert samples[("hub_model_latency_ms_sum", model)] == 900.0
    assert samples[("hub_model_latency_ms", (("model", "ElKulako/cryptobert"), ("quantile", "0.95")))] == 80.0
    assert samples[("hub_model_available", (("model", "ProsusAI/finbert"),))] == 0.0


def test_single_process_is_its_own_leader_and_process_metrics_are_there(samples):
    assert samples[("hub_leader", ())] == 1.0
    assert ("process_resident_memory_bytes", ()) in samples


async def test_real_app_counts_connections_per_endpoint_and_messages_sent(app_server):
    async with websockets.connect(app_server.ws("/ws/news")) as ws:
        app_server.post_news(title="counted")
        await recv_until(ws, lambda m: m["type"] == "news")
        reply = httpx.get(f"{app_server.http}/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert 'hub_ws_connections{endpoint="/ws/news"} 1.0' in text
    assert 'hub_ws_outbox_depth{endpoint="/ws/news"}' in text
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["hub_ws_messages_sent_total"] >= 1
    # The news frame this client parsed went out on the direct path (uvicorn's websockets-sansio).
    assert 1 <= values["hub_ws_messages_sent_direct_total"] <= values["hub_ws_messages_sent_total"]
    for name in (
        "hub_ws_messages_dropped_total",
        "hub_ws_slow_consumer_closes_total",
        "hub_leader",
        "hub_bus_seq",
        "hub_provider_status",
    ):
        assert name in text


async def test_real_app_reports_gc_pauses_per_generation_and_its_event_loop(app_server):
    text = httpx.get(f"{app_server.http}/metrics").text
    for generation in ("0", "1", "2"):
        assert f'hub_gc_pause_seconds_count{{generation="{generation}"}}' in text
        assert f'hub_gc_pause_seconds_bucket{{generation="{generation}",le="+Inf"}}' in text
        assert f'hub_gc_collected_objects_total{{generation="{generation}"}}' in text
    assert 'hub_event_loop{loop="uvloop"} 1.0' in text  # uvloop is pinned in requirements.txt
    frozen = next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                  if s.name == "hub_gc_frozen_objects")
    assert frozen > 0  # GC_FREEZE is on by default


def test_real_app_started_with_server_loop_asyncio_serves_on_asyncio(tmp_path):
    with running_app(tmp_path, SERVER_LOOP="asyncio") as app:
        text = httpx.get(f"{app.http}/metrics").text
    assert 'hub_event_loop{loop="asyncio"} 1.0' in text


async def test_direct_writes_switched_off_send_every_frame_through_asgi(tmp_path):
    with running_app(tmp_path, WS_DIRECT_WRITES="0") as app:
        async with websockets.connect(app.ws("/ws/news")) as ws:
            app.post_news(title="through asgi")
            message = await recv_until(ws, lambda m: m["type"] == "news")
            text = httpx.get(f"{app.http}/metrics").text
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert message["data"]["title"] == "through asgi"
    assert values["hub_ws_messages_sent_total"] >= 1 and values["hub_ws_messages_sent_direct_total"] == 0
