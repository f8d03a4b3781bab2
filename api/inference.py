"""`POST /api/sentiment`, `GET /api/models`, `GET /ready`: served by the inference service, or refused when it is off.

Limits are checked here, before any model work, so an oversized request costs nothing. Texts
longer than a model's token window are scored on their beginning and flagged `truncated`; only
texts past `MAX_TEXT_CHARS` (far beyond any window) are refused. Texts are the cost: the guard
took one token at the door, this route takes one more per further text (429 when the client's
budget cannot pay), and the scoring goes through the anonymous lane (`core/lane.py`, 503 when full).
With ENABLE_INFERENCE=0 the same paths answer a clear 503 (and `/ready` says ready), not a 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal, NoReturn

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.lane import LaneFull, ScoringLane
from core.rest import (
    ModelsList,
    Readiness,
    RestErrorCode,
    SentimentResult,
    SentimentScores,
    error_detail,
    error_responses,
)
from core.token_bucket import ClientAccount, retry_after_s

if TYPE_CHECKING:
    from inference import InferenceService

__all__ = ["INFERENCE_OFF", "MAX_TEXTS", "MAX_TEXT_CHARS", "SentimentRequest", "build_inference_router"]

MAX_TEXTS = 256
# The models read ~128 tokens (~500 characters); this bounds tokenizer work per request, not meaning.
MAX_TEXT_CHARS = 20_000
HTTP_413_CONTENT_TOO_LARGE = 413

INFERENCE_OFF = error_detail(RestErrorCode.MODELS_UNAVAILABLE, "the inference service is off (ENABLE_INFERENCE=0)")

_READY_RESPONSES = {503: {"model": Readiness, "description": "Some model is still loading (`loading` names them)"},
                    **error_responses(429)}

# Runs blocking work somewhere off the loop: the anonymous lane's threads, or a plain worker thread.
Runner = Callable[[Callable[[Sequence[str], str], list[bool]], Sequence[str], str], Awaitable[list[bool]]]


class SentimentRequest(BaseModel):
    """Body of `POST /api/sentiment`."""

    texts: list[str] = Field(description=f"1 to {MAX_TEXTS} texts of at most {MAX_TEXT_CHARS} characters")
    model: str | None = Field(default=None, description="one model id; omitted = weighted ensemble")
    domain: Literal["news", "social"] = "news"


def build_inference_router(service: InferenceService | None, *, lane: ScoringLane | None = None) -> APIRouter:
    """Return the inference routes served by `service` (scoring on `lane`'s threads, or a plain thread
    without one), or, when `service` is None, the same paths answering that inference is off."""
    router = APIRouter(tags=["inference"])
    if service is None:
        _add_off_routes(router)
    else:
        _add_routes(router, service, lane)
    return router


def _add_routes(router: APIRouter, service: InferenceService, lane: ScoringLane | None) -> None:
    @router.post("/api/sentiment", response_model=SentimentScores,
                 responses=error_responses(404, 413, 422, 429, 503))
    async def post_sentiment(body: SentimentRequest, request: Request) -> SentimentScores:
        """Score up to 256 texts with one model or the ensemble."""
        if len(body.texts) > MAX_TEXTS:
            raise HTTPException(
                status_code=HTTP_413_CONTENT_TOO_LARGE,
                detail=error_detail(
                    RestErrorCode.TOO_MANY_TEXTS,
                    f"expected at most {MAX_TEXTS} texts per request, got {len(body.texts)}; split the batch",
                ),
            )
        for index, text in enumerate(body.texts):
            if len(text) > MAX_TEXT_CHARS:
                raise HTTPException(
                    status_code=HTTP_413_CONTENT_TOO_LARGE,
                    detail=error_detail(
                        RestErrorCode.TEXT_TOO_LONG,
                        f"texts[{index}] has {len(text)} characters, expected at most {MAX_TEXT_CHARS}; shorten it",
                    ),
                )
        _charge_texts(request, len(body.texts))
        if lane is None:  # the router alone, without the app's lane (its tests)
            return await _score_and_flag(service, body, asyncio.to_thread)
        try:
            async with lane.admit():
                return await _score_and_flag(service, body, lane.run)
        except LaneFull as exc:
            raise HTTPException(
                status_code=503, detail=error_detail(RestErrorCode.BUSY, str(exc)),
                headers={"Retry-After": str(retry_after_s(exc.retry_after_s))},
            ) from exc

    @router.get("/ready", tags=["system"], response_model=Readiness, responses=_READY_RESPONSES)
    async def get_ready() -> JSONResponse:
        """Answer 200 once every configured model is available or failed, 503 while any is loading."""
        readiness = service.readiness()
        return JSONResponse(readiness, status_code=200 if readiness["ready"] else 503)

    @router.get("/api/models", response_model=ModelsList, responses=error_responses(429, 503))
    async def get_models() -> ModelsList:
        """List every configured model with its status and measured statistics."""
        return ModelsList.model_validate(
            {**service.count_statuses(), "ensemble": service.ensemble_choices(), "models": service.describe_models()})


def _add_off_routes(router: APIRouter) -> None:
    # The same answer models as the served routes, so clients get one type whichever way the server runs.
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


def _charge_texts(request: Request, texts: int) -> None:
    """Charge the client one token per text beyond the one the guard took; 429 when it cannot pay."""
    account: ClientAccount | None = getattr(request.state, "rate_account", None)
    if account is None or texts <= 1:  # the operator, or no guard in front
        return
    wait_s = account.charge(texts - 1)
    if wait_s is not None:
        raise HTTPException(
            status_code=429,
            detail=error_detail(RestErrorCode.RATE_LIMITED, account.budgets.refusal(wait_s, unit="texts")
                                + f"; this request carries {texts}"),
            headers={"Retry-After": str(retry_after_s(wait_s))},
        )


async def _score_and_flag(service: InferenceService, body: SentimentRequest, run: Runner) -> SentimentScores:
    """Score the texts, flag the ones past a model's window (tokenizing on `run`'s threads), answer."""
    # Imported here: the inference package pulls in torch, which ENABLE_INFERENCE=0 never imports.
    from inference.errors import EngineOverloaded, UnknownModel

    try:
        results = await service.score(body.texts, domain=body.domain, model=body.model)
    except UnknownModel as exc:
        raise HTTPException(status_code=404, detail=error_detail(RestErrorCode.UNKNOWN_MODEL, str(exc))) from exc
    except EngineOverloaded as exc:
        raise HTTPException(
            status_code=503, detail=error_detail(RestErrorCode.OVERLOADED, f"{exc}"), headers={"Retry-After": "1"}
        ) from exc
    flags = [False] * len(results)
    if results and service.could_overflow(body.texts, results[0].model):
        flags = await run(service.window_overflows, body.texts, results[0].model)
    readiness = service.readiness()
    return SentimentScores(
        ready=readiness["ready"],
        loading=readiness["loading"],
        results=[
            SentimentResult(
                label=result.label,
                score=round(result.score, 6),
                confidence=round(result.confidence, 6),
                probs={name: round(value, 6) for name, value in result.probs.items()},
                model=result.model,
                truncated=truncated,
            )
            for result, truncated in zip(results, flags, strict=True)
        ],
    )
