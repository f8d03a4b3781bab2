"""Every HTTP route of the app: REST, `/metrics`, `/asyncapi.json` and the inference routes, each router built
with the collaborators it serves from, and the error handlers and guard in front of them."""

from api.asyncapi import build_asyncapi_router
from api.errors import http_error, validation_error
from api.guard import RestGuard
from api.inference import build_inference_router
from api.market import build_market_router
from api.metrics import MetricsCollector, build_metrics_router
from api.models_admin import build_models_admin_router
from api.news import build_news_router

__all__ = [
    "MetricsCollector",
    "RestGuard",
    "build_asyncapi_router",
    "build_inference_router",
    "build_market_router",
    "build_metrics_router",
    "build_models_admin_router",
    "build_news_router",
    "http_error",
    "validation_error",
]
