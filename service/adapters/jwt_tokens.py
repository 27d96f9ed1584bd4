"""Actor tokens verified with PyJWT against the keys of a JWKS file.

Every key names its algorithm (`alg`) and id (`kid`); a token is checked with its key's
algorithm only, so `alg: none` and algorithm confusion (an HS256 token "signed" with an RSA
public key) cannot pass. Asymmetric issuers (RS256, ES256, EdDSA) publish public keys; service
producers sharing a secret use `oct` keys with HS256. The file is read again when it changes,
so keys rotate without a restart: add the new key, move issuers over, remove the old one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK

from service.app.auth import Claims, InvalidToken
from service.errors import ConfigurationError

RELOAD_CHECK_SECONDS = 1.0
_REQUIRED_CLAIMS = ["exp", "iss", "sub", "aud"]


class JwtVerifier:
    def __init__(
        self,
        keys_file: Path,
        *,
        issuers: Sequence[str],
        audience: str,
        leeway_seconds: float = 30.0,
        role_claim: str = "role",
        tenant_claim: str = "tenant",
    ) -> None:
        if not issuers:
            raise ConfigurationError("AUTH_ISSUERS must name the issuers whose tokens count")
        self._file = keys_file
        self._issuers = list(issuers)
        self._audience = audience
        self._leeway = leeway_seconds
        self._role_claim = role_claim
        self._tenant_claim = tenant_claim
        self._keys: dict[str, PyJWK] = {}
        self._loaded_mtime = -1.0
        self._checked_at = float("-inf")
        self._reload()

    def verify(self, token: str) -> Claims:
        self._reload_if_changed()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT") from None
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise InvalidToken("its key id is not one of the configured keys") from None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=self._issuers,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("it has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("it is not valid yet") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"its key only verifies {key.algorithm_name}") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("its signature does not verify") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("its issuer is not trusted") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("it is meant for another audience") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"it has no '{error.claim}' claim") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(type(error).__name__) from None
        return Claims(
            subject=str(claims["sub"]),
            issuer=str(claims["iss"]),
            role=_text(claims.get(self._role_claim)),
            tenant=_text(claims.get(self._tenant_claim)),
            scopes=_scopes(claims),
        )

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= RELOAD_CHECK_SECONDS:
            self._checked_at = now
            self._reload()

    def _reload(self) -> None:
        try:
            mtime = os.stat(self._file).st_mtime
        except OSError as error:
            if not self._keys:
                raise ConfigurationError(
                    f"AUTH_KEYS_FILE {self._file}: {error.strerror}"
                ) from error
            return  # keep the keys we have while the file is being replaced
        if mtime == self._loaded_mtime:
            return
        self._keys = load_keys(self._file)
        self._loaded_mtime = mtime


def load_keys(path: Path) -> dict[str, PyJWK]:
    """The keys of a JWKS file by key id; each must name its algorithm."""
    try:
        document = json.loads(path.read_text())
        entries: list[dict[str, Any]] = document["keys"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigurationError(
            f"AUTH_KEYS_FILE {path} is not a JWKS document: {error}"
        ) from error
    keys: dict[str, PyJWK] = {}
    for entry in entries:
        kid, alg = entry.get("kid"), entry.get("alg")
        if not kid or not alg:
            raise ConfigurationError(f"AUTH_KEYS_FILE {path}: every key needs a 'kid' and an 'alg'")
        if alg == "none":
            raise ConfigurationError(f"AUTH_KEYS_FILE {path}: key {kid} has alg 'none'")
        try:
            keys[kid] = PyJWK(entry, algorithm=alg)
        except jwt.PyJWTError as error:
            raise ConfigurationError(f"AUTH_KEYS_FILE {path}: key {kid}: {error}") from error
    return keys


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """OAuth 2 `scope` (space-separated) or `scp` (a list), whichever the issuer uses."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(item for item in scp if isinstance(item, str))
    return frozenset()
