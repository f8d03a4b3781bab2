"""`POST /api/news` (authenticated ingestion) and `GET /api/news` (stored news).

A news item that cannot be made durable (journal or backplane down, no leader) answers 503 with
`Retry-After`: nothing was published, and the client retries.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Header, HTTPException, Query
from pydantic import BaseModel, Field, HttpUrl, SecretStr

from api.guard import INGEST_FEATURE, require_admin
from api.market import StoreQuery
from core.clock import utc_now
from core.records import NewsItem
from core.rest import IngestResult, NewsList, RestErrorCode, error_detail, error_responses
from core.store import SearchUnavailable, Store
from desk.news import NewsDesk, NewsUnavailable

__all__ = ["IngestNews", "build_news_router"]


class IngestNews(BaseModel):
    """A news item pushed by an operator or another service."""

    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=5000)
    url: HttpUrl
    source: str = Field(min_length=1, max_length=100)
    published_at: datetime | None = None
    image_url: HttpUrl | None = None


def build_news_router(*, news: NewsDesk, store: Store, query: StoreQuery, admin_token: SecretStr | None) -> APIRouter:
    """Return the news routes: ingestion through `news` (admin token), reads from `store` on `query`'s threads."""
    router = APIRouter(tags=["news"])

    @router.post("/api/news", status_code=201, response_model=IngestResult,
                 responses=error_responses(401, 403, 413, 422, 429, 503))
    async def ingest_news(
        body: IngestNews, authorization: str | None = Header(default=None)
    ) -> IngestResult:
        """Publish a news item to /ws/news (deduped by URL, scored, persisted); answers with its seq once durable."""
        require_admin(admin_token, authorization, INGEST_FEATURE)
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
        try:
            [result] = await news.ingest([item])
        except NewsUnavailable as exc:
            raise HTTPException(503, error_detail(RestErrorCode.NEWS_UNAVAILABLE, str(exc)),
                                headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}) from exc
        if result.duplicate:  # the original seq, so a retry after a lost answer gets the same one
            return IngestResult(seq=result.seq, duplicate=True, sentiment=None, sentiment_score=None)
        return IngestResult(seq=result.seq, duplicate=False, sentiment=result.item.sentiment,
                            sentiment_score=result.item.sentiment_score)


    @router.get("/api/news", response_model=NewsList, responses=error_responses(422, 429, 503))
    async def list_news(
        q: str | None = Query(default=None, max_length=100,
                              description="words in title or description, as a phrase; the last word may be a prefix"),
        source: str | None = Query(default=None, max_length=100),
        limit: int = Query(default=50, ge=1, le=500),
    ) -> NewsList:
        """Return stored news, newest first."""
        try:
            items = await query(store.recent_news, q, limit, source)
        except SearchUnavailable as exc:
            raise HTTPException(503, error_detail(
                RestErrorCode.SEARCH_UNAVAILABLE, f"news search unavailable: {exc}")) from exc
        except Exception as exc:
            raise HTTPException(503, error_detail(
                RestErrorCode.DATABASE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}")) from exc
        return NewsList.model_validate({"count": len(items), "items": items})

    return router
