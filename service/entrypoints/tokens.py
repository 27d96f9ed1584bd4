"""`order-service token`: actor tokens for development and tests, signed with a key of
AUTH_KEYS_FILE that can sign (a shared `oct` secret, or a private key) for the issuer used.

`make run` makes `.dev-auth-keys.json` (one HS256 key for the development issuer) once, beside
`.dev-master.key`; the service trusts it when AUTH_MODE is verify or required. Production
issuers sign with their own keys and publish the public halves in AUTH_KEYS_FILE.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt

from service.adapters.jwt_tokens import FileKey, load_keys
from service.errors import ConfigurationError
from service.settings import Settings

DEV_AUTH_KEYS = Path(".dev-auth-keys.json")
DEV_ISSUER = "order-service-dev"
DEV_KEY_ID = "dev-hs256"
# A token rides in a Kafka record that anyone reading the topic sees; a long-lived one is a
# standing credential.
MAX_TTL_SECONDS = 3600


def dev_auth_keys() -> Path:
    """The development JWKS, made once (mode 0600): one shared HS256 secret."""
    path = DEV_AUTH_KEYS.resolve()
    if not path.exists():
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        key = {"kty": "oct", "kid": DEV_KEY_ID, "alg": "HS256", "k": secret}
        _write_private(path, {"keys": [{**key, "issuers": [DEV_ISSUER]}]})
    else:
        _name_dev_issuer(path)
    return path


def _name_dev_issuer(path: Path) -> None:
    """A file made before keys named their issuers no longer loads: give its keys the
    development issuer, keeping their secrets."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # not ours to repair; the service says what is wrong with it
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return
    unnamed = [key for key in keys if isinstance(key, dict) and "issuers" not in key]
    for key in unnamed:
        key["issuers"] = [DEV_ISSUER]
    if unnamed:
        _write_private(path, document)


def _write_private(path: Path, document: Mapping[str, Any]) -> None:
    """Writes beside and renames over, so a running service never reads half a file (which it
    would report as not loading)."""
    staging = path.with_name(f"{path.name}.new")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(json.dumps(document, indent=2) + "\n")
    os.replace(staging, path)


def mint(
    settings: Settings,
    *,
    subject: str,
    role: str,
    tenant: str,
    scopes: Sequence[str],
    ttl_seconds: int,
    command_id: UUID | None = None,
    key_id: str | None = None,
) -> str:
    """A token for one command (its `jti` is the command_id) or, without one, an unbound token
    that only keys with accepts_unbound take."""
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ConfigurationError(f"a token lives 1 to {MAX_TTL_SECONDS} seconds, not {ttl_seconds}")
    if settings.auth_keys_file is None:
        raise ConfigurationError("no AUTH_KEYS_FILE to sign with (make run creates one)")
    issuers = [i.strip() for i in settings.auth_issuers.split(",") if i.strip()]
    issuer = issuers[0] if issuers else DEV_ISSUER
    key = _signing_key(load_keys(settings.auth_keys_file), issuer, role, key_id)
    assert key.signing is not None
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": settings.auth_audience,
        "sub": subject,
        settings.auth_role_claim: role,
        settings.auth_tenant_claim: tenant,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    if command_id is not None:
        claims["jti"] = str(command_id)
    return jwt.encode(claims, key.signing, algorithm=key.algorithm, headers={"kid": key.kid})


def _signing_key(
    keys: Mapping[str, FileKey], issuer: str, role: str, key_id: str | None
) -> FileKey:
    """The key asked for, or the first in the file that may sign this token."""
    if key_id is not None:
        key = keys.get(key_id)
        if key is None:
            raise ConfigurationError(f"AUTH_KEYS_FILE has no key {key_id!r} to sign with")
        refusal = _cannot_sign(key, issuer, role)
        if refusal is not None:
            raise ConfigurationError(f"key {key_id!r} {refusal}")
        return key
    for key in keys.values():
        if _cannot_sign(key, issuer, role) is None:
            return key
    raise ConfigurationError(
        f"AUTH_KEYS_FILE has no key that can sign a {role!r} token for issuer {issuer!r}"
    )


def _cannot_sign(key: FileKey, issuer: str, role: str) -> str | None:
    """Why a token signed with this key would not be one (the verifier would refuse it)."""
    if key.signing is None:
        return "is a public key: it cannot sign"
    if issuer not in key.issuers:
        return f"may not sign for issuer {issuer!r}"
    if key.roles is not None and role not in key.roles:
        return f"may not assert role {role!r}"
    return None


def scope_for(settings: Settings, command_type: str) -> str:
    """The one scope a command type needs, in the registered family that takes it."""
    from service.app import registry
    from service.entrypoints.families import registered

    families = registered(settings)
    family = registry.family_of(families, command_type)
    scope = family.commands.authority.scopes.get(command_type) if family else None
    if scope is None:
        known = ", ".join(sorted(t for f in families for t in f.commands.authority.scopes))
        raise ConfigurationError(f"{command_type!r} is no command type ({known})")
    return scope


def bound_command(token: str) -> UUID | None:
    """The command a token is bound to (its `jti`), read without verifying it: the service
    verifies; this only keeps `send` from sending a token with a command it cannot carry."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return UUID(str(claims["jti"]))
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
