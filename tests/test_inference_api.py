"""REST endpoints: limits, unknown models, shapes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.inference import MAX_TEXT_CHARS, MAX_TEXTS, build_inference_router
from inference import CATALOG, LEXICON_MODEL_ID
from testbed.inference_fixtures import build_service


@pytest.fixture
async def client():
    service = build_service([LEXICON_MODEL_ID])  # the lexicon alone: no weights needed
    app = FastAPI()
    app.include_router(build_inference_router(service))
    await service.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http
    await service.stop()


async def test_api_sentiment_returns_one_result_per_text(client):
    response = await client.post("/api/sentiment", json={"texts": ["BTC to the moon", "got rekt"]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["label"] for result in results] == ["bullish", "bearish"]
    assert set(results[0]) == {"label", "score", "confidence", "probs", "model", "truncated"}
    assert response.json()["ready"] is True and response.json()["loading"] == []
    assert set(results[0]["probs"]) == {"bearish", "neutral", "bullish"}


async def test_api_too_many_texts_is_413(client):
    response = await client.post("/api/sentiment", json={"texts": ["x"] * (MAX_TEXTS + 1)})
    assert response.status_code == 413
    assert "at most 256 texts" in response.json()["detail"]["message"]


async def test_api_text_too_long_is_413(client):
    response = await client.post("/api/sentiment", json={"texts": ["ok", "y" * (MAX_TEXT_CHARS + 1)]})
    assert response.status_code == 413
    assert f"texts[1] has {MAX_TEXT_CHARS + 1} characters" in response.json()["detail"]["message"]


async def test_api_text_longer_than_the_window_is_scored_in_full_by_the_lexicon(client):
    response = await client.post("/api/sentiment", json={"texts": ["bitcoin to the moon " * 150]})
    [result] = response.json()["results"]
    assert response.status_code == 200 and result["model"] == "lexicon" and result["truncated"] is False


async def test_api_ready_is_200_once_every_model_settled(client):
    response = await client.get("/ready")
    assert response.status_code == 200 and response.json()["available"] == ["lexicon"]


async def test_api_unknown_model_is_404(client):
    response = await client.post("/api/sentiment", json={"texts": ["x"], "model": "nobody/nothing"})
    assert response.status_code == 404
    assert "unknown model 'nobody/nothing'" in response.json()["detail"]["message"]


async def test_api_texts_not_a_list_is_422(client):
    response = await client.post("/api/sentiment", json={"texts": "just one string"})
    assert response.status_code == 422


async def test_api_models_lists_statuses_and_numbers(client):
    await client.post("/api/sentiment", json={"texts": ["hodl"], "model": "lexicon"})
    body = (await client.get("/api/models")).json()
    [lexicon] = [model for model in body["models"] if model["id"] == "lexicon"]
    assert body["available"] == 1 and body["total"] == len(CATALOG)
    assert body["total"] == body["available"] + body["loading"] + body["failed"] + body["skipped"]
    assert (lexicon["id"], lexicon["type"], lexicon["status"], lexicon["calls"]) == (
        "lexicon",
        "sentiment",
        "available",
        1,
    )
    assert lexicon["success_rate"] == 100.0


async def test_api_without_service_is_503():
    app = FastAPI()
    app.include_router(build_inference_router(None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.post("/api/sentiment", json={"texts": ["x"]})
    assert response.status_code == 503
