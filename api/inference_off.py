"""`/api/sentiment` and `/api/models` when the app runs with ENABLE_INFERENCE=0: a clear 503, not a 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

__all__ = ["INFERENCE_OFF", "router"]

router = APIRouter(tags=["inference"])

INFERENCE_OFF = {"code": "MODELS_UNAVAILABLE", "message": "the inference service is off (ENABLE_INFERENCE=0)"}


@router.post("/api/sentiment")
async def post_sentiment() -> Any:
    """Answer 503: inference is disabled on this server."""
    raise HTTPException(status_code=503, detail=INFERENCE_OFF)


@router.get("/ready", tags=["system"])
async def get_ready() -> dict[str, Any]:
    """Answer ready: with inference off there is no model to wait for."""
    return {"ready": True, "loading": [], "available": [], "failed": {}, "inference": "off"}


@router.get("/api/models")
async def get_models() -> Any:
    """Answer 503: inference is disabled on this server."""
    raise HTTPException(status_code=503, detail=INFERENCE_OFF)
