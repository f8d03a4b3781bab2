"""Routes the Space adds next to the API: the /live page and the static JS client.

The JS client is served from the npm package's own source, clients/js/hub-client.js, so the file a page
imports from the app and the file `npm pack` ships are one file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["JS_CLIENT", "STATIC_DIR", "STATIC_PREFIX", "build_space_router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
JS_CLIENT = STATIC_DIR.parent.parent / "clients" / "js" / "hub-client.js"
STATIC_PREFIX = "/space/static"
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def build_space_router(symbols: Sequence[str]) -> APIRouter:
    """Return the router of the Space's own pages (registered before Gradio's mount at `/`)."""
    router = APIRouter(tags=["space"])
    shipped = {path.name: path for path in STATIC_DIR.iterdir() if path.suffix in _MEDIA_TYPES}
    shipped[JS_CLIENT.name] = JS_CLIENT

    @router.get(
        "/live", response_class=HTMLResponse, summary="Prices and news straight from the WebSocket API",
        # Spelled out: a `model` here would be filed under the route's text/html. The other routes
        # declare ErrorResponse, so the reference resolves.
        responses={429: {"description": "Rate limited (`RATE_LIMITED`); retry after `Retry-After` seconds",
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}},
    )
    async def live() -> HTMLResponse:
        page = shipped["live.html"].read_text(encoding="utf-8")
        tracked = html.escape(",".join(symbols), quote=True)
        return HTMLResponse(page.replace("{{SYMBOLS}}", tracked), headers={"Cache-Control": "no-cache"})

    @router.get(STATIC_PREFIX + "/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        path = shipped.get(name)  # only the files listed above, so no path ever escapes them
        if path is None:
            raise HTTPException(404, f"no static file {name!r}; shipped: {', '.join(sorted(shipped))}")
        return FileResponse(
            path,
            media_type=_MEDIA_TYPES[path.suffix],
            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
        )

    return router
