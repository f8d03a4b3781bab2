"""`POST /api/news` (authenticated ingestion) and `GET /api/news` (stored news)."""

from __future__ import annotations

import hmac
from datetime import datetime

from fastapi import APIRouter, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field, HttpUrl

from core.clock import utc_now
from core.records import NewsItem

__all__ = ["IngestNews", "router"]

router = APIRouter(tags=["news"])


class IngestNews(BaseModel):
    """A news item pushed by an operator or another service."""

    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=5000)
    url: HttpUrl
    source: str = Field(min_length=1, max_length=100)
    published_at: datetime | None = None
    image_url: HttpUrl | None = None


class IngestResult(BaseModel):
    seq: int | None
    duplicate: bool
    sentiment: str | None
    sentiment_score: float | None


def _check_admin(request: Request, authorization: str | None) -> None:
    expected = request.app.state.runtime.settings.admin_token
    if not expected:
        raise HTTPException(403, "News ingestion is disabled: set ADMIN_TOKEN on the server to enable it")
    offered = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        raise HTTPException(401, "Missing or wrong token: send Authorization: Bearer <ADMIN_TOKEN>",
                            headers={"WWW-Authenticate": "Bearer"})


@router.post("/api/news", status_code=201, response_model=IngestResult)
async def ingest_news(
    body: IngestNews, request: Request, authorization: str | None = Header(default=None)
) -> IngestResult:
    """Publish a news item to /ws/news (deduped by URL, scored, persisted); answers with its seq once durable."""
    _check_admin(request, authorization)
    published = body.published_at or utc_now()
    if published.tzinfo is None:
        published = published.replace(tzinfo=utc_now().tzinfo)
    item = NewsItem(
        title=body.title.strip(),
        description=body.description.strip(),
        url=str(body.url),
        source=body.source.strip(),
        published_at=published,
        image_url=str(body.image_url) if body.image_url else None,
    )
    # Raises NewsUnavailable (503 with Retry-After, see app.py) unless the item is durable.
    [result] = await request.app.state.runtime.news.ingest([item])
    if result.duplicate:  # the original seq, so a retry after a lost answer gets the same one
        return IngestResult(seq=result.seq, duplicate=True, sentiment=None, sentiment_score=None)
    return IngestResult(seq=result.seq, duplicate=False, sentiment=result.item.sentiment,
                        sentiment_score=result.item.sentiment_score)


@router.get("/api/news")
async def list_news(
    request: Request,
    q: str | None = Query(default=None, max_length=100, description="case-insensitive text in title or description"),
    source: str | None = Query(default=None, max_length=100),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, object]:
    """Return stored news, newest first."""
    store = request.app.state.runtime.store
    try:
        items = store.recent_news(q, limit, source)
    except Exception as exc:
        raise HTTPException(503, f"database unavailable: {type(exc).__name__}") from exc
    return {"count": len(items), "items": items}
