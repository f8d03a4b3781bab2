"""The app's error handlers: every HTTP error answers the one REST error shape (`core/rest.py`).

Routes raise `HTTPException(status, error_detail(code, message))`; an error raised with a plain
message (Starlette's 404 and 405, the body limiter's 413) gets the code of its status. Validation
errors keep pydantic's entries under `errors` and say the first few in `message`.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.rest import ERROR_CODE_BY_STATUS, RestErrorCode, error_detail

__all__ = ["http_error", "validation_error"]

# A 422 names this many fields in its message; `errors` lists them all.
_NAMED_FIELDS = 3


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Answer an `HTTPException` in the REST error shape, keeping its status and headers."""
    assert isinstance(exc, HTTPException)
    detail: object = exc.detail
    if not (isinstance(detail, dict) and "code" in detail and "message" in detail):
        code = ERROR_CODE_BY_STATUS.get(exc.status_code, RestErrorCode.HTTP_ERROR)
        detail = error_detail(code, str(detail))
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Answer a `RequestValidationError` (422) in the REST error shape, with pydantic's entries in `errors`."""
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    named = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in errors[:_NAMED_FIELDS])
    more = f" (and {len(errors) - _NAMED_FIELDS} more)" if len(errors) > _NAMED_FIELDS else ""
    detail = {**error_detail(RestErrorCode.INVALID_REQUEST, f"invalid request: {named}{more}"), "errors": errors}
    return JSONResponse({"detail": detail}, status_code=422)
