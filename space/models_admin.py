"""The Models tab's operator control: load or unload a catalog model, behind the admin token.

The control stays hidden until the token typed in checks out on the server, and every load or
unload checks it again: hiding is for the visitor's eyes, the check is what protects the models.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from space.fmt import esc
from space.parts import ScreenParts

__all__ = ["change_model", "token_is_admin", "unlock"]


def token_is_admin(expected: SecretStr | None, token: str) -> bool:
    """Return True when `token` is the server's ADMIN_TOKEN, `expected` (never when none is set)."""
    secret = expected.get_secret_value() if expected is not None else ""
    return bool(secret) and hmac.compare_digest(token.strip().encode(), secret.encode())


def unlock(parts: ScreenParts, token: str) -> tuple[bool, str]:
    """Return whether to show the control, and a line saying why."""
    if parts.admin_token is None:
        return False, '<span class="muted">Model administration is disabled: ADMIN_TOKEN is not set.</span>'
    if parts.inference is None:
        return False, '<span class="muted">The inference layer is off on this server.</span>'
    if not token_is_admin(parts.admin_token, token):
        return False, '<span class="down">Wrong token.</span>'
    return True, '<span class="up">Token accepted: load or unload a model below.</span>'


async def change_model(parts: ScreenParts, token: str, model_id: str | None, *, load: bool) -> str:
    """Load or unload one model for an operator; return the outcome as a line of HTML."""
    if not token_is_admin(parts.admin_token, token):
        return '<span class="down">Wrong token.</span>'
    inference = parts.inference
    if inference is None or not model_id:
        return '<span class="muted">Choose a model.</span>'
    from inference.errors import ModelNotReady, UnknownModel

    try:
        entry = await (inference.load_model(model_id) if load else inference.unload_model(model_id))
    except (UnknownModel, ModelNotReady) as exc:
        return f'<span class="down">{esc(exc)}</span>'
    return f"<b>{esc(model_id)}</b>: {esc(entry['status'])} ({esc(entry.get('reason') or '')})"
