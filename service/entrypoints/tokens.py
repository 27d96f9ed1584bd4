"""`order-service token`: actor tokens for development and tests, signed with a key of
AUTH_KEYS_FILE that can sign (a shared `oct` secret, or a private key).

`make run` makes `.dev-auth-keys.json` (one HS256 key) once, beside `.dev-master.key`; the
service trusts it when AUTH_MODE is verify or required. Production issuers sign with their own
keys and publish the public halves in AUTH_KEYS_FILE.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import jwt

from service.adapters.jwt_tokens import load_keys
from service.errors import ConfigurationError
from service.settings import Settings

DEV_AUTH_KEYS = Path(".dev-auth-keys.json")
DEV_ISSUER = "order-service-dev"
DEV_KEY_ID = "dev-hs256"


def dev_auth_keys() -> Path:
    """The development JWKS, made once (mode 0600): one shared HS256 secret."""
    path = DEV_AUTH_KEYS.resolve()
    if not path.exists():
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        key = {"kty": "oct", "kid": DEV_KEY_ID, "alg": "HS256", "k": secret}
        path.touch(mode=0o600)
        path.write_text(json.dumps({"keys": [key]}, indent=2) + "\n")
    return path


def mint(
    settings: Settings,
    *,
    subject: str,
    role: str,
    tenant: str,
    scopes: Sequence[str],
    ttl_seconds: int,
    key_id: str | None = None,
) -> str:
    if settings.auth_keys_file is None:
        raise ConfigurationError("no AUTH_KEYS_FILE to sign with (make run creates one)")
    keys = load_keys(settings.auth_keys_file)
    kid = key_id or next(
        (k for k, key in keys.items() if key.key_type == "oct"), next(iter(keys), None)
    )
    if kid is None or kid not in keys:
        raise ConfigurationError(f"AUTH_KEYS_FILE has no key {key_id!r} to sign with")
    issuers = [i.strip() for i in settings.auth_issuers.split(",") if i.strip()]
    now = int(time.time())
    claims = {
        "iss": issuers[0] if issuers else DEV_ISSUER,
        "aud": settings.auth_audience,
        "sub": subject,
        settings.auth_role_claim: role,
        settings.auth_tenant_claim: tenant,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    key = keys[kid]
    return jwt.encode(claims, key.key, algorithm=key.algorithm_name, headers={"kid": kid})
