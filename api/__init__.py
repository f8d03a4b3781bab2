"""REST endpoints next to the streams: health, news ingestion and queries, prices and history."""

from api.errors import http_error, validation_error
from api.guard import RestGuard
from api.inference_off import router as inference_off_router
from api.market import router as market_router
from api.models_admin import router as models_admin_router
from api.news import router as news_router

__all__ = [
    "RestGuard",
    "http_error",
    "inference_off_router",
    "market_router",
    "models_admin_router",
    "news_router",
    "validation_error",
]
