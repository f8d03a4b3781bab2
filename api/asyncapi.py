"""`GET /asyncapi.json`: the AsyncAPI 3.0 document of the WebSocket API (built in core/asyncapi.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from core.asyncapi import build_asyncapi
from core.rest import AsyncApiDocument, error_responses

__all__ = ["build_asyncapi_router"]


def build_asyncapi_router() -> APIRouter:
    """Return the router serving the AsyncAPI document, readable from any origin."""
    router = APIRouter(tags=["space"])

    @router.get("/asyncapi.json", summary="AsyncAPI 3.0 document of the WebSocket API",
                response_model=AsyncApiDocument, responses=error_responses(429))
    async def asyncapi() -> JSONResponse:
        return JSONResponse(build_asyncapi(), headers={"Access-Control-Allow-Origin": "*"})

    return router
