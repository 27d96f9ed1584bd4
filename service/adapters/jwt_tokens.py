"""Actor tokens verified with PyJWT against the keys of a JWKS file.

Every key names its algorithm (`alg`) and id (`kid`); a token is checked with its key's
algorithm only, so `alg: none` and algorithm confusion (an HS256 token "signed" with an RSA
public key) cannot pass. Asymmetric issuers (RS256, ES256, EdDSA) publish public keys; service
producers sharing a secret use `oct` keys with HS256. Four members of our own limit a key:

    {"keys": [{"kty": "oct", "kid": "svc-1", "alg": "HS256", "k": "...",
               "issuers": ["https://id.example"],   # required: the `iss` it may sign for
               "roles": ["service"],                # optional: the roles it may assert
               "tenants": ["acme"],                 # optional: the tenants it may act in
               "accepts_unbound": true}]}           # optional: tokens without a `jti`

A token must also name an issuer of AUTH_ISSUERS; both must hold. It is bound to one command by
its `jti` (the gate compares it with the command_id); only a key that accepts unbound tokens
lets one without a `jti` through, and only while it is young.

The file is read again when it changes, so keys rotate without a restart: add the new key, move
issuers over, remove the old one. A change that does not load keeps the last good keys and is
reported by `problem()` (readiness); a deleted file drops every key.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt import PyJWK
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from service.app.auth import ACTOR_TYPES, Claims, InvalidToken
from service.domain.values import frozen
from service.errors import ConfigurationError

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 1.0
MAX_SUBJECT_LENGTH = 128
_REQUIRED_CLAIMS = ["exp", "iss", "sub", "aud"]
# Control, format (bidi overrides, zero-width) and surrogate code points: a subject holding
# them prints unlike what it compares as, so two actors could look alike in the audit trail.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_NOT_BOUND = "it is not bound to a command: it needs a 'jti' claim equal to the command_id"

PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
PrivateKey = RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey | Ed448PrivateKey
_PUBLIC_TYPES = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)
_PRIVATE_TYPES = (RSAPrivateKey, EllipticCurvePrivateKey, Ed25519PrivateKey, Ed448PrivateKey)

Stamp = tuple[int, int, int, int]
"""Device, inode, size and mtime of the key file: any change (a rename over it included)."""


class KeyFileError(ConfigurationError):
    """AUTH_KEYS_FILE cannot be used; `reason` says why without the path."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"AUTH_KEYS_FILE {path}: {reason}")
        self.reason = reason


@frozen
class FileKey:
    """One key of the file, with what it may be used for."""

    kid: str
    algorithm: str
    issuers: frozenset[str]
    roles: frozenset[str] | None
    """None: any role."""
    tenants: frozenset[str] | None
    """None: any tenant. A shared secret is an identity: scope it to its tenants."""
    accepts_unbound: bool
    verifying: bytes | PublicKey
    """What PyJWT verifies with: the secret, or the public half (never a private key)."""
    signing: bytes | PrivateKey | None
    """What a token can be signed with, if the file holds it."""

    @property
    def private(self) -> bool:
        """An asymmetric key whose private half is in the file."""
        return self.signing is not None and not isinstance(self.signing, bytes)


class JwtVerifier:
    def __init__(
        self,
        keys_file: Path,
        *,
        issuers: Sequence[str],
        audience: str,
        leeway_seconds: float = 30.0,
        max_token_age_seconds: float = 300.0,
        max_token_lifetime_seconds: float = 3600.0,
        role_claim: str = "role",
        tenant_claim: str = "tenant",
    ) -> None:
        if not issuers:
            raise ConfigurationError("AUTH_ISSUERS must name the issuers whose tokens count")
        self._file = keys_file
        self._issuers = list(issuers)
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_age = max_token_age_seconds
        self._max_lifetime = max_token_lifetime_seconds
        self._role_claim = role_claim
        self._tenant_claim = tenant_claim
        self._checked_at = time.monotonic()
        self._problem: str | None = None
        keys, stamp = _read(keys_file)  # at startup a file that does not load is fatal
        self._keys: Mapping[str, FileKey] = {}
        self._stamp: Stamp | None = None
        self._loaded_at: float | None = None
        self._use(keys, stamp)

    def problem(self) -> str | None:
        self._check_if_due()
        return self._problem

    def verify(self, token: str) -> Claims:
        self._check_if_due()
        try:
            return self._verify(token)
        except InvalidToken:
            raise
        except Exception as error:
            # The gate only expects InvalidToken; a surprise from PyJWT or from a key must
            # refuse this token, not stop the consumer. Only the type is logged: a message
            # could quote the token.
            log.error("verifying a token failed unexpectedly: %s", type(error).__name__)
            raise InvalidToken("it cannot be verified") from None

    def _verify(self, token: str) -> Claims:
        if not self._keys:
            raise InvalidToken("no keys are configured")
        key = self._key_of(token)
        payload = self._decode(token, key)
        if payload["iss"] not in key.issuers:
            raise InvalidToken("its key may not sign for this issuer")
        subject = _subject(payload.get("sub"))
        role = _text(payload.get(self._role_claim))
        if role is not None and key.roles is not None and role not in key.roles:
            raise InvalidToken("its key may not assert this role")
        tenant = _text(payload.get(self._tenant_claim))
        if key.tenants is not None and tenant not in key.tenants:
            raise InvalidToken("its key may not act in this tenant")
        self._check_lifetime(payload["exp"])
        return Claims(
            subject=subject,
            issuer=str(payload["iss"]),
            role=role,
            tenant=tenant,
            scopes=_scopes(payload),
            token_id=self._token_id(payload, key),
        )

    def still_trusts(self, claims: Claims) -> bool:
        """Whether a key of the file as it is now could still sign these claims: a replay of a
        command admitted under a key or issuer since withdrawn is admitted no more."""
        self._check_if_due()
        return claims.issuer in self._issuers and any(
            claims.issuer in key.issuers
            and (key.roles is None or claims.role in key.roles)
            and (key.tenants is None or claims.tenant in key.tenants)
            for key in self._keys.values()
        )

    def _check_lifetime(self, exp: object) -> None:
        """A token that stays valid for long is a standing credential on a topic anyone reading
        it sees, and outlives the record of its use."""
        if isinstance(exp, int | float) and exp - time.time() > self._max_lifetime + self._leeway:
            raise InvalidToken("it stays valid for too long (AUTH_MAX_TOKEN_LIFETIME_SECONDS)")

    def _key_of(self, token: str) -> FileKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT") from None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("its key id is not one of the configured keys")
        return key

    def _decode(self, token: str, key: FileKey) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuers,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(_why(error, key)) from None

    def _token_id(self, payload: Mapping[str, Any], key: FileKey) -> str | None:
        jti = payload.get("jti")
        if isinstance(jti, str) and jti:
            return jti
        if "jti" in payload or not key.accepts_unbound:
            raise InvalidToken(_NOT_BOUND)
        self._check_fresh(payload.get("iat"))
        return None

    def _check_fresh(self, iat: object) -> None:
        """An unbound token can be replayed with any command, so only a young one counts."""
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
            raise InvalidToken("it is not bound to a command, so it needs an 'iat' claim")
        age = time.time() - iat
        if age > self._max_age + self._leeway:
            raise InvalidToken("it is not bound to a command and was issued too long ago")
        if age < -self._leeway:
            raise InvalidToken("it is not valid yet")

    def _check_if_due(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= RELOAD_CHECK_SECONDS:
            self._checked_at = now
            self._check()

    def _check(self) -> None:
        try:
            stamp = _stamp(os.stat(self._file))
        except FileNotFoundError:
            self._gone()
            return
        except OSError as error:
            self._failed(error.strerror or type(error).__name__)
            return
        # While there is a problem every check tries again: the fix may keep the stamp.
        if stamp == self._stamp and self._problem is None:
            return
        try:
            keys, stamp = _read(self._file)
        except KeyFileError as error:
            self._failed(error.reason)
            return
        except Exception as error:
            # Whatever the file holds, verify() and problem() must not raise; keep the keys.
            self._failed(f"reading it failed with {type(error).__name__}")
            return
        self._use(keys, stamp)

    def _use(self, keys: Mapping[str, FileKey], stamp: Stamp) -> None:
        log.info("AUTH_KEYS_FILE %s loaded; key ids: %s", self._file, ", ".join(keys) or "none")
        self._keys, self._stamp = keys, stamp
        self._loaded_at = time.time()
        self._problem = None
        for key in keys.values():
            if key.private:
                log.warning(
                    "AUTH_KEYS_FILE %s holds the private half of key %r; only its public half"
                    " is used. The file should hold only public keys.",
                    self._file,
                    key.kid,
                )

    def _failed(self, why: str) -> None:
        if self._loaded_at is None:
            kept = "no keys are in use, so every token is refused"
        else:
            kept = f"still using the keys loaded at {_timestamp(self._loaded_at)}"
        self._problem = f"AUTH_KEYS_FILE {self._file} does not load: {why}; {kept}"
        log.error("%s", self._problem)

    def _gone(self) -> None:
        # No file, no trust: the keys it held may be the ones being withdrawn.
        self._keys, self._stamp, self._loaded_at = {}, None, None
        self._problem = (
            f"AUTH_KEYS_FILE {self._file} is gone; no keys are in use, so every token is refused"
        )
        log.error("%s", self._problem)


def load_keys(path: Path) -> dict[str, FileKey]:
    """The keys of a JWKS file by key id; KeyFileError when any of them is unusable."""
    return _read(path)[0]


def _read(path: Path) -> tuple[dict[str, FileKey], Stamp]:
    try:
        with open(path, "rb") as file:
            stamp = _stamp(os.fstat(file.fileno()))
            raw = file.read()
    except OSError as error:
        raise KeyFileError(path, error.strerror or type(error).__name__) from error
    except ValueError as error:  # a path with a NUL byte
        raise KeyFileError(path, str(error)) from error
    try:
        document = json.loads(raw, object_pairs_hook=_unique_members)
    except (ValueError, RecursionError) as error:
        raise KeyFileError(path, f"not JSON: {error}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyFileError(path, "not a JWKS document (an object with a list 'keys')")
    keys: dict[str, FileKey] = {}
    for entry in entries:
        key = _file_key(path, entry)
        if key.kid in keys:
            raise KeyFileError(path, f"key {key.kid!r} appears twice")
        keys[key.kid] = key
    return keys, stamp


def _file_key(path: Path, entry: object) -> FileKey:
    if not isinstance(entry, dict):
        raise KeyFileError(path, "every key must be a JSON object")
    kid, alg = entry.get("kid"), entry.get("alg")
    if not isinstance(kid, str) or not kid or not isinstance(alg, str) or not alg:
        raise KeyFileError(path, "every key needs a 'kid' and an 'alg'")
    if alg.lower() == "none":
        raise KeyFileError(path, f"key {kid!r} has alg 'none'")
    verifying, signing = _halves(path, kid, entry, alg)
    return FileKey(
        kid=kid,
        algorithm=alg,
        issuers=_issuers(path, kid, entry.get("issuers")),
        roles=_roles(path, kid, entry.get("roles")),
        tenants=_tenants(path, kid, entry.get("tenants")),
        accepts_unbound=_flag(path, kid, entry.get("accepts_unbound", False)),
        verifying=verifying,
        signing=signing,
    )


def _halves(
    path: Path, kid: str, entry: dict[str, Any], alg: str
) -> tuple[bytes | PublicKey, bytes | PrivateKey | None]:
    """The key to verify with and, if the file holds it, the key to sign with."""
    try:
        made = PyJWK(entry, algorithm=alg).key
    except Exception:
        # PyJWT's messages may quote the whole JWK, secret or private members included.
        raise KeyFileError(
            path, f"key {kid!r} is not a usable {entry.get('kty')!r} key for {alg!r}"
        ) from None
    if isinstance(made, bytes):
        # RFC 7518, section 3.2: an HMAC key MUST be at least as long as the hash output; a
        # shorter shared secret can be guessed offline from any token read off a topic.
        shortest = _HMAC_KEY_BYTES.get(alg.upper(), 32)
        if len(made) < shortest:
            raise KeyFileError(
                path,
                f"key {kid!r} is {len(made)} bytes; {alg} needs at least {shortest}"
                " (RFC 7518, section 3.2)",
            )
        return made, made
    if isinstance(made, _PRIVATE_TYPES):
        # PyJWT cannot verify with a private key (it fails with AttributeError).
        return made.public_key(), made
    if isinstance(made, _PUBLIC_TYPES):
        return made, None
    raise KeyFileError(path, f"key {kid!r} is not a signature key")


_HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _issuers(path: Path, kid: str, value: object) -> frozenset[str]:
    issuers = _strings(value)
    if issuers is None:
        raise KeyFileError(
            path, f"key {kid!r} needs 'issuers', a non-empty list of the issuers it may sign for"
        )
    return issuers


def _roles(path: Path, kid: str, value: object) -> frozenset[str] | None:
    if value is None:
        return None
    roles = _strings(value)
    if roles is None or not roles <= ACTOR_TYPES:
        raise KeyFileError(
            path,
            f"key {kid!r}: 'roles' must be a non-empty list of {', '.join(sorted(ACTOR_TYPES))}",
        )
    return roles


def _tenants(path: Path, kid: str, value: object) -> frozenset[str] | None:
    if value is None:
        return None
    tenants = _strings(value)
    if tenants is None:
        raise KeyFileError(path, f"key {kid!r}: 'tenants' must be a non-empty list of tenant ids")
    return tenants


def _flag(path: Path, kid: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise KeyFileError(path, f"key {kid!r}: 'accepts_unbound' must be true or false")
    return value


def _strings(value: object) -> frozenset[str] | None:
    """The items of a non-empty list of non-empty strings; None for anything else."""
    if not isinstance(value, list) or not value:
        return None
    items = [item for item in value if isinstance(item, str) and item]
    return frozenset(items) if len(items) == len(value) else None


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuses repeated member names (I-JSON): two readers must not see two different keys."""
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError(f"member {name!r} appears twice")
        seen[name] = value
    return seen


def _stamp(status: os.stat_result) -> Stamp:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _why(error: jwt.PyJWTError, key: FileKey) -> str:
    """Why PyJWT refused a token, in words that never quote it."""
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"it has no '{error.claim}' claim"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason.format(alg=key.algorithm)
    return type(error).__name__


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "it has expired"),
    (jwt.ImmatureSignatureError, "it is not valid yet"),
    (jwt.InvalidAlgorithmError, "its key only verifies {alg}"),
    (jwt.InvalidSignatureError, "its signature does not verify"),
    (jwt.InvalidIssuerError, "its issuer is not trusted"),
    (jwt.InvalidAudienceError, "it is meant for another audience"),
    (InvalidSubjectError, "its subject is not a string"),
    (jwt.InvalidIssuedAtError, "its 'iat' claim is not a number"),
    (InvalidJTIError, "its 'jti' claim is not a string"),
)


def _subject(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_SUBJECT_LENGTH:
        raise InvalidToken("its subject is empty or too long")
    if any(unicodedata.category(char) in _HIDDEN_CATEGORIES for char in value):
        raise InvalidToken("its subject has control characters")
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """OAuth 2 `scope` (space-separated) or `scp` (a list), whichever the issuer uses."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(item for item in scp if isinstance(item, str))
    return frozenset()
