"""`POST /api/models/{id}/load` and `/unload`: an operator loads or unloads a catalog model while the app runs.

Both need the admin token (`Authorization: Bearer <ADMIN_TOKEN>`, as `POST /api/news`). Loading
answers 202 at once with the model's status; the download's bytes and the load's outcome show in
`GET /api/models` and `models_status` as it goes. An unloaded model stays listed as `skipped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Header, HTTPException
from pydantic import SecretStr

from api.guard import require_admin
from api.inference import INFERENCE_OFF
from core.rest import ModelChange, RestErrorCode, error_detail, error_responses

if TYPE_CHECKING:
    from inference import InferenceService

__all__ = ["build_models_admin_router"]

_ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429, 503)


def build_models_admin_router(*, inference: InferenceService | None, admin_token: SecretStr | None) -> APIRouter:
    """Return the routes that load and unload `inference`'s models (503 when inference is off)."""
    router = APIRouter(tags=["inference"])

    async def change(model_id: str, authorization: str | None, *, load: bool) -> ModelChange:
        require_admin(admin_token, authorization, "Model administration")
        if inference is None:
            raise HTTPException(status_code=503, detail=INFERENCE_OFF)
        # Imported here: the inference package pulls in torch, which ENABLE_INFERENCE=0 never imports.
        from inference.errors import ModelNotReady, UnknownModel

        try:
            entry = await (inference.load_model(model_id) if load else inference.unload_model(model_id))
        except UnknownModel as exc:
            raise HTTPException(status_code=404, detail=error_detail(RestErrorCode.UNKNOWN_MODEL, str(exc))) from exc
        except ModelNotReady as exc:
            raise HTTPException(status_code=409, detail=error_detail(RestErrorCode.MODEL_BUSY, str(exc))) from exc
        return ModelChange.model_validate({"model": entry})

    @router.post("/api/models/{model_id:path}/load", status_code=202, response_model=ModelChange, responses=_ERRORS)
    async def load_model(model_id: str, authorization: str | None = Header(default=None)) -> ModelChange:
        """Start loading a catalog model (admin token); its status shows the download's bytes."""
        return await change(model_id, authorization, load=True)

    @router.post("/api/models/{model_id:path}/unload", response_model=ModelChange, responses=_ERRORS)
    async def unload_model(model_id: str, authorization: str | None = Header(default=None)) -> ModelChange:
        """Unload a loaded model (admin token); it stays listed as skipped."""
        return await change(model_id, authorization, load=False)

    return router
