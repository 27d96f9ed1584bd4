"""Keys and tokens for tests of the token gate, minted the way producing services and identity
providers would (PyJWT, real keys); and forged ones, built by hand the way an attacker would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service.app.auth import AuthMode
from service.settings import Settings

ISSUER = "https://id.example.test"
OTHER_ISSUER = "https://partner.example.test"
AUDIENCE = "order-lifecycle-service"
SERVICE_SECRET = b"e2e-shared-secret-thirty-two-by!"
GATEWAY_SECRET = b"gateway-secret-of-thirty-two-by!"
PARTNER_SECRET = b"partner-secret-of-thirty-two-by!"
TENANT_B_SECRET = b"tenant-b-secret-of-thirty-two-b!"
IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
IDP_PUBLIC_PEM = IDP_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
SERVICE_ROLES = ["service", "user", "system"]
MISPLACED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
"""A service's private key, put in the key file by mistake (it should hold the public half)."""


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keys_document() -> dict[str, Any]:
    """The key file: a shared secret for services and staff tools, an identity provider's public
    key for customers, a gateway key that passes customers' unbound tokens through, and a
    partner's key that may sign only for the partner's issuer."""
    idp = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(IDP_KEY.public_key()))
    return {
        "keys": [
            {
                "kty": "oct",
                "kid": "svc-1",
                "alg": "HS256",
                "k": b64(SERVICE_SECRET),
                "issuers": [ISSUER],
                "roles": SERVICE_ROLES,
                "tenants": ["tenant-a"],
            },
            {
                "kty": "oct",
                "kid": "svc-b",
                "alg": "HS256",
                "k": b64(TENANT_B_SECRET),
                "issuers": [ISSUER],
                "roles": ["service"],
                "tenants": ["tenant-b"],
            },
            {**idp, "kid": "idp-1", "alg": "RS256", "issuers": [ISSUER], "roles": ["customer"]},
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(MISPLACED_KEY)),
                "kid": "misplaced-1",
                "alg": "RS256",
                "issuers": [ISSUER],
                "roles": ["service"],
            },
            {
                "kty": "oct",
                "kid": "gw-1",
                "alg": "HS256",
                "k": b64(GATEWAY_SECRET),
                "issuers": [ISSUER],
                "roles": ["customer"],
                "accepts_unbound": True,
            },
            {
                "kty": "oct",
                "kid": "partner-1",
                "alg": "HS256",
                "k": b64(PARTNER_SECRET),
                "issuers": [OTHER_ISSUER],
            },
        ]
    }


def write_keys(path: Path, document: dict[str, Any] | None = None) -> Path:
    path.write_text(json.dumps(document or keys_document()))
    return path


def secured(settings: Settings, keys_file: Path, mode: AuthMode = AuthMode.REQUIRED) -> Settings:
    return settings.model_copy(
        update={
            "auth_mode": mode,
            "auth_keys_file": keys_file,
            "auth_issuers": f"{ISSUER},{OTHER_ISSUER}",
            "auth_allow_claimed_actors": mode is not AuthMode.REQUIRED,
        }
    )


def claims_for(
    command: dict[str, Any] | None, subject: str, role: str, scope: str, **extra: Any
) -> dict[str, Any]:
    """Claims bound to `command` (jti = its command_id); None: bound to nothing."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "role": role,
        "tenant": "tenant-a",
        "scope": scope,
        "iat": now,
        "exp": now + 120,
    }
    if command is not None:
        body["jti"] = command["command_id"]
    body.update(extra)
    return {name: value for name, value in body.items() if value is not None}


def service_token(
    command: dict[str, Any] | None, subject: str, scope: str, kid: str = "svc-1", **extra: Any
) -> str:
    """A producing service's token (a shared secret of its tenant's), bound to `command`."""
    role = extra.pop("role", "service")
    claims = claims_for(command, subject, role, scope, **extra)
    secret = TENANT_B_SECRET if kid == "svc-b" else SERVICE_SECRET
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def customer_token(command: dict[str, Any] | None, customer: str, scope: str, **extra: Any) -> str:
    """A customer's token from the identity provider (RS256), bound to `command`."""
    claims = claims_for(command, customer, "customer", scope, **extra)
    return jwt.encode(claims, IDP_KEY, algorithm="RS256", headers={"kid": "idp-1"})


def gateway_token(customer: str, scope: str, **extra: Any) -> str:
    """A customer's token passed through by a gateway: bound to no command."""
    claims = claims_for(None, customer, "customer", scope, **extra)
    return jwt.encode(claims, GATEWAY_SECRET, algorithm="HS256", headers={"kid": "gw-1"})


def partner_token(command: dict[str, Any], subject: str, scope: str, **extra: Any) -> str:
    """Signed with the partner's key, for whatever issuer `extra` names."""
    claims = claims_for(command, subject, "service", scope, **extra)
    return jwt.encode(claims, PARTNER_SECRET, algorithm="HS256", headers={"kid": "partner-1"})


def forged(claims: dict[str, Any], header: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand, as an attacker would: unsigned, or HMAC-signed with `secret`."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def bearer(token: str) -> list[tuple[str, bytes]]:
    return [("authorization", f"Bearer {token}".encode())]


def misplaced_key_token(command: dict[str, Any], subject: str, scope: str) -> str:
    """Signed with the private key the file holds by mistake."""
    claims = claims_for(command, subject, "service", scope)
    return jwt.encode(claims, MISPLACED_KEY, algorithm="RS256", headers={"kid": "misplaced-1"})
