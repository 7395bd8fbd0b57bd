"""Tokens for a worker: `PIE_TOKEN`, else one signed here with PIE's HS256 secret, as `pie
worker` and `pie token` sign them (src/auth/token-issuer.ts), for a worker that shares the
server's configuration or data folder."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

#: A minted worker token lives this long and is renewed after RENEW_AFTER_S (as `pie worker`).
TOKEN_TTL_S = 12 * 3600
RENEW_AFTER_S = 11 * 3600


class TokenUnavailable(Exception):
    """No token given, and none can be signed here."""


def mint_token(
    secret: bytes,
    *,
    subject: str,
    scopes: Sequence[str],
    models: Optional[Sequence[str]] = None,
    clients: Optional[Sequence[str]] = None,
    ttl_s: int = 3600,
    issuer: str = "pie",
    audience: str = "pie",
    now: Optional[float] = None,
) -> str:
    """An HS256 JWT as PIE's embedded default verifies it: `scope` (space-separated), and
    `models`/`clients` lists when given (absent means every one)."""
    issued = int(time.time() if now is None else now)
    claims: Dict[str, Any] = {"scope": " ".join(scopes)}
    if clients is not None:
        claims["clients"] = list(clients)
    if models is not None:
        claims["models"] = list(models)
    claims.update(sub=subject, iss=issuer, aud=audience, iat=issued, exp=issued + ttl_s)
    header = _segment({"alg": "HS256", "typ": "JWT"})
    payload = _segment(claims)
    signing_input = header + b"." + payload
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def _segment(value: Mapping[str, Any]) -> bytes:
    return _b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _setting(env: Mapping[str, str], name: str) -> Optional[str]:
    value = env.get(name, "").strip()
    return value or None


def shared_secret(env: Mapping[str, str]) -> Optional[bytes]:
    """PIE's HS256 secret as `pie serve` finds it: `PIE_JWT_SECRET`, else the `jwt-secret` file of
    the data folder (`PIE_DATA_DIR`, default `.pie`); None when PIE verifies tokens with a
    public key (`PIE_JWKS_URL`, `PIE_JWT_PUBLIC_KEY`) or no secret exists yet."""
    if _setting(env, "PIE_JWKS_URL") or _setting(env, "PIE_JWT_PUBLIC_KEY"):
        return None
    configured = _setting(env, "PIE_JWT_SECRET")
    if configured is not None:
        if len(configured) < 32:
            raise TokenUnavailable("PIE_JWT_SECRET must be at least 32 characters long")
        return configured.encode("utf-8")
    path = os.path.join(os.path.abspath(_setting(env, "PIE_DATA_DIR") or ".pie"), "jwt-secret")
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip().encode("utf-8")
    except FileNotFoundError:
        return None


def worker_token(model: str, worker_id: str, env: Mapping[str, str]) -> Callable[[], str]:
    """The bearer token for claims: `PIE_TOKEN` when set, else one minted with the shared secret
    and renewed before it expires. Raises TokenUnavailable when neither can be had."""
    given = _setting(env, "PIE_TOKEN")
    if given is not None:
        return lambda: given
    secret = shared_secret(env)
    if secret is None:
        raise TokenUnavailable(
            "set PIE_TOKEN to a token with scope jobs:complete for model %s "
            "(npm run pie -- token --scope jobs:complete --model %s --ttl 12h)" % (model, model)
        )
    issuer = _setting(env, "PIE_JWT_ISSUER") or "pie"
    audience = _setting(env, "PIE_JWT_AUDIENCE") or "pie"
    lock = threading.Lock()
    current: List[Any] = []  # [token, minted_at]

    def token() -> str:
        with lock:
            if not current or time.monotonic() - current[1] > RENEW_AFTER_S:
                minted = mint_token(
                    secret,
                    subject="worker:" + worker_id,
                    scopes=["jobs:complete"],
                    models=[model],
                    ttl_s=TOKEN_TTL_S,
                    issuer=issuer,
                    audience=audience,
                )
                current[:] = [minted, time.monotonic()]
            return str(current[0])

    return token
