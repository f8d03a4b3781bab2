"""`/api/sentiment` and `/api/models` when the app runs with ENABLE_INFERENCE=0: a clear 503, not a 404."""

from __future__ import annotations

from typing import NoReturn

from fastapi import APIRouter, HTTPException

from core.rest import ModelsList, Readiness, RestErrorCode, SentimentScores, error_detail, error_responses

__all__ = ["INFERENCE_OFF", "router"]

router = APIRouter(tags=["inference"])

INFERENCE_OFF = error_detail(RestErrorCode.MODELS_UNAVAILABLE, "the inference service is off (ENABLE_INFERENCE=0)")


# The same answer models as the inference routes, so clients get one type whichever way the server runs.
@router.post("/api/sentiment", response_model=SentimentScores, responses=error_responses(413, 429, 503))
async def post_sentiment() -> NoReturn:
    """Answer 503: inference is disabled on this server."""
    raise HTTPException(status_code=503, detail=INFERENCE_OFF)


@router.get("/ready", tags=["system"], response_model=Readiness, response_model_exclude_unset=True,
            responses=error_responses(429))
async def get_ready() -> Readiness:
    """Answer ready: with inference off there is no model to wait for."""
    return Readiness(ready=True, loading=[], available=[], failed={}, inference="off")


@router.get("/api/models", response_model=ModelsList, responses=error_responses(429, 503))
async def get_models() -> NoReturn:
    """Answer 503: inference is disabled on this server."""
    raise HTTPException(status_code=503, detail=INFERENCE_OFF)
