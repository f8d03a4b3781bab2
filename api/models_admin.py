"""`POST /api/models/{id}/load` and `/unload`: an operator loads or unloads a catalog model while the app runs.

Both need the admin token (`Authorization: Bearer <ADMIN_TOKEN>`, as `POST /api/news`). Loading
answers 202 at once with the model's status; the download's bytes and the load's outcome show in
`GET /api/models` and `models_status` as it goes. An unloaded model stays listed as `skipped`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request

from api.guard import admin_refusal
from api.inference_off import INFERENCE_OFF

__all__ = ["router"]

router = APIRouter(tags=["inference"])


def _check_admin(request: Request, authorization: str | None) -> None:
    refusal = admin_refusal(request.app.state.runtime.settings.admin_token, authorization)
    if refusal is None:
        return
    detail = refusal.detail
    if refusal.status == 403:
        detail = "Model administration is disabled: set ADMIN_TOKEN on the server to enable it"
    raise HTTPException(refusal.status, detail, headers=refusal.headers or None)


async def _change(request: Request, model_id: str, authorization: str | None, *, load: bool) -> dict[str, Any]:
    _check_admin(request, authorization)
    service = getattr(request.app.state, "inference", None)
    if service is None:
        raise HTTPException(status_code=503, detail=INFERENCE_OFF)
    # Imported here: the inference package pulls in torch, which ENABLE_INFERENCE=0 never imports.
    from inference.errors import ModelNotReady, UnknownModel

    try:
        entry = await (service.load_model(model_id) if load else service.unload_model(model_id))
    except UnknownModel as exc:
        raise HTTPException(status_code=404, detail={"code": "UNKNOWN_MODEL", "message": str(exc)}) from exc
    except ModelNotReady as exc:
        raise HTTPException(status_code=409, detail={"code": "MODEL_BUSY", "message": str(exc)}) from exc
    return {"model": entry}


@router.post("/api/models/{model_id:path}/load", status_code=202)
async def load_model(
    model_id: str, request: Request, authorization: str | None = Header(default=None)
) -> dict[str, Any]:
    """Start loading a catalog model (admin token); its status shows the download's bytes."""
    return await _change(request, model_id, authorization, load=True)


@router.post("/api/models/{model_id:path}/unload")
async def unload_model(
    model_id: str, request: Request, authorization: str | None = Header(default=None)
) -> dict[str, Any]:
    """Unload a loaded model (admin token); it stays listed as skipped."""
    return await _change(request, model_id, authorization, load=False)
