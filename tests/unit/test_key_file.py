"""The actor-token key file: what each key may sign, tokens bound to one command, private keys
used by their public half, and reloads that fail safe.

Real keys and signatures (PyJWT, cryptography) in temporary files; no servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.adapters import jwt_tokens
from service.adapters.jwt_tokens import JwtVerifier
from service.app.auth import InvalidToken
from service.entrypoints import tokens
from service.errors import ConfigurationError
from service.settings import Settings

ISSUER_A = "https://a.example.test"
ISSUER_B = "https://b.example.test"
AUDIENCE = "order-lifecycle-service"
SECRET = b"a-shared-secret-of-thirty-two-b!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
NOT_BOUND = "it is not bound to a command: it needs a 'jti' claim equal to the command_id"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def oct_key(kid: str = "svc-1", secret: bytes = SECRET, **members: Any) -> dict[str, Any]:
    return {"kty": "oct", "kid": kid, "alg": "HS256", "k": _b64(secret), **members}


def rsa_public(kid: str = "rsa-1", **members: Any) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    return {**public, "kid": kid, "alg": "RS256", **members}


def write(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def touch_later(path: Path) -> None:
    """A new mtime, so a rewrite within the same clock tick is still seen."""
    later = time.time() + 5
    os.utime(path, (later, later))


def verifier(path: Path, issuers: tuple[str, ...] = (ISSUER_A,), **options: Any) -> JwtVerifier:
    return JwtVerifier(path, issuers=issuers, audience=AUDIENCE, leeway_seconds=5, **options)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "iss": ISSUER_A,
        "aud": AUDIENCE,
        "sub": "checkout",
        "role": "service",
        "tenant": "tenant-a",
        "scope": "orders:write",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def hs256(kid: str = "svc-1", secret: bytes = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256", headers={"kid": kid})


def rs256(kid: str = "rsa-1", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), RSA_KEY, algorithm="RS256", headers={"kid": kid})


def refused(check: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        check.verify(token)
    return str(caught.value)


@pytest.fixture
def reload_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwt_tokens, "RELOAD_CHECK_SECONDS", 0.0)


# What each key may sign.


def test_a_key_signs_only_for_its_issuers(tmp_path: Path) -> None:
    secret_b = uuid.uuid4().bytes * 2
    path = write(
        tmp_path / "keys.json",
        oct_key("key-a", issuers=[ISSUER_A]),
        oct_key("key-b", secret_b, issuers=[ISSUER_B, "https://c.example.test"]),
    )
    check = verifier(path, issuers=(ISSUER_A, ISSUER_B))
    assert check.verify(hs256("key-a", iss=ISSUER_A)).issuer == ISSUER_A
    forged = hs256("key-a", iss=ISSUER_B)
    assert refused(check, forged) == "its key may not sign for this issuer"
    # A key's list does not widen AUTH_ISSUERS: both must hold.
    outsider = hs256("key-b", secret_b, iss="https://c.example.test")
    assert refused(check, outsider) == "its issuer is not trusted"


def test_a_key_restricted_to_roles_cannot_assert_another(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A], roles=["service"]))
    check = verifier(path)
    assert check.verify(hs256(role="service")).role == "service"
    assert refused(check, hs256(role="system")) == "its key may not assert this role"
    assert refused(check, hs256(role="customer")) == "its key may not assert this role"


def test_a_key_without_issuers_is_refused_at_startup_by_its_kid(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", rsa_public(issuers=[ISSUER_A]), oct_key("svc-legacy"))
    with pytest.raises(ConfigurationError, match="key 'svc-legacy' needs 'issuers'"):
        verifier(path)


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ({"issuers": []}, "needs 'issuers'"),
        ({"issuers": ISSUER_A}, "needs 'issuers'"),
        ({"issuers": [ISSUER_A, ""]}, "needs 'issuers'"),
        ({"issuers": [ISSUER_A], "roles": ["admin"]}, "'roles' must be"),
        ({"issuers": [ISSUER_A], "roles": []}, "'roles' must be"),
        ({"issuers": [ISSUER_A], "accepts_unbound": "yes"}, "'accepts_unbound' must be"),
    ],
)
def test_a_key_with_unusable_limits_is_refused_at_startup(
    tmp_path: Path, members: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        verifier(write(tmp_path / "keys.json", oct_key(**members)))


def test_a_shared_secret_shorter_than_the_hash_is_refused_at_startup(tmp_path: Path) -> None:
    short = oct_key("svc-short", secret=b"sixteen-byte-key", issuers=[ISSUER_A])
    with pytest.raises(
        ConfigurationError, match="'svc-short' is 16 bytes; HS256 needs at least 32"
    ):
        verifier(write(tmp_path / "keys.json", short))


def test_a_missing_file_is_refused_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AUTH_KEYS_FILE"):
        verifier(tmp_path / "absent.json")


# Private keys in the file.


@pytest.mark.parametrize(
    ("private_key", "alg", "to_jwk"),
    [
        (RSA_KEY, "RS256", jwt.algorithms.RSAAlgorithm.to_jwk),
        (EC_KEY, "ES256", jwt.algorithms.ECAlgorithm.to_jwk),
        (ED_KEY, "EdDSA", jwt.algorithms.OKPAlgorithm.to_jwk),
    ],
)
def test_a_private_jwk_verifies_by_its_public_half(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    private_key: Any,
    alg: str,
    to_jwk: Callable[[Any], str],
) -> None:
    entry = {**json.loads(to_jwk(private_key)), "kid": "idp-1", "alg": alg, "issuers": [ISSUER_A]}
    assert "d" in entry
    with caplog.at_level(logging.WARNING, logger=jwt_tokens.__name__):
        check = verifier(write(tmp_path / "keys.json", entry))
    assert any(
        r.levelno == logging.WARNING and "'idp-1'" in r.getMessage() and "public" in r.getMessage()
        for r in caplog.records
    )
    good = jwt.encode(claims(), private_key, algorithm=alg, headers={"kid": "idp-1"})
    assert check.verify(good).subject == "checkout"
    for token in _hostile_tokens(good, "idp-1", entry):
        refused(check, token)


def _hostile_tokens(good: str, kid: str, entry: dict[str, Any]) -> list[str]:
    """Tokens that must each be refused with InvalidToken and nothing else."""
    header, payload, signature = good.split(".")
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [
        f"{header}.{payload}.{signature[:-4]}AAAA",
        f"{header}.{payload}.",
        f"{header}.{payload}",
        f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{payload}.",
        _hmac_signed(public_pem, kid),
        _hmac_signed(str(entry.get("d", "")).encode(), kid),
        _hmac_signed(json.dumps(entry).encode(), kid),
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': ['x']}).encode())}.{payload}.{signature}",
        f"{_b64(b'[1, 2]')}.{payload}.{signature}",
        "",
        "...",
        "not a token",
        "\x00\xff",
    ]


def _hmac_signed(secret: bytes, kid: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims()).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


# Reloads that fail safe.

GARBAGE = [
    b"not json",
    b"\xff\xfe\x00",
    b"[]",
    b'{"keys": {}}',
    b"[" * 100_000,
    json.dumps({"keys": [oct_key()]}).encode(),  # no issuers
    json.dumps({"keys": [oct_key(issuers=[ISSUER_A], alg="XX512")]}).encode(),
    json.dumps({"keys": [rsa_public(issuers=[ISSUER_A], alg="HS256")]}).encode(),
    json.dumps({"keys": [{"kid": "k", "alg": "HS256", "issuers": [ISSUER_A], "k": "x"}]}).encode(),
    json.dumps({"keys": [oct_key(issuers=[ISSUER_A]), oct_key(issuers=[ISSUER_A])]}).encode(),
    b'{"keys": [], "keys": []}',
    json.dumps({"keys": ["svc-1"]}).encode(),
    json.dumps({"keys": [oct_key(issuers=[ISSUER_A], alg="none")]}).encode(),
    json.dumps({"keys": [rsa_public(issuers=[ISSUER_A], n=12345)]}).encode(),
    json.dumps(
        {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": "AA",
                    "y": "AA",
                    "kid": "ec-1",
                    "alg": "ES256",
                    "issuers": [ISSUER_A],
                }
            ]
        }
    ).encode(),
    json.dumps({"keys": [{**oct_key(issuers=[ISSUER_A]), "kid": 7}]}).encode(),
]


@pytest.mark.usefixtures("reload_always")
@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_file_rewritten_with_garbage_keeps_the_old_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    path = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A]))
    check = verifier(path)
    assert check.problem() is None
    path.write_bytes(garbage)
    touch_later(path)
    with caplog.at_level(logging.ERROR, logger=jwt_tokens.__name__):
        assert check.verify(hs256()).subject == "checkout"
    problem = check.problem()
    assert problem is not None
    assert problem.startswith(f"AUTH_KEYS_FILE {path} does not load: ")
    assert "; still using the keys loaded at " in problem
    assert "\n" not in problem
    assert _b64(SECRET) not in problem
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert all(_b64(SECRET) not in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("reload_always")
def test_a_deleted_file_drops_every_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A]))
    check = verifier(path)
    path.unlink()
    with caplog.at_level(logging.ERROR, logger=jwt_tokens.__name__):
        assert refused(check, hs256()) == "no keys are configured"
    assert refused(check, "garbage") == "no keys are configured"
    assert check.problem() == (
        f"AUTH_KEYS_FILE {path} is gone; no keys are in use, so every token is refused"
    )
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    # Garbage where the file was: still no keys, and no pretence of old ones.
    path.write_text("not json")
    problem = check.problem()
    assert problem is not None
    assert "does not load" in problem
    assert "no keys are in use" in problem
    assert refused(check, hs256()) == "no keys are configured"


@pytest.mark.usefixtures("reload_always")
def test_a_restored_file_clears_the_problem(tmp_path: Path) -> None:
    good = json.dumps({"keys": [oct_key(issuers=[ISSUER_A])]})
    path = tmp_path / "keys.json"
    path.write_text(good)
    check = verifier(path)
    path.write_text("{")
    assert check.problem() is not None
    path.write_text(good)
    touch_later(path)
    assert check.problem() is None
    path.unlink()
    assert check.problem() is not None
    path.write_text(good)
    assert check.problem() is None
    assert check.verify(hs256()).subject == "checkout"


@pytest.mark.usefixtures("reload_always")
def test_keys_rotate_and_a_renamed_file_is_seen(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A]))
    check = verifier(path)
    new_secret = uuid.uuid4().bytes * 2
    staged = write(tmp_path / "keys.new", oct_key("svc-2", new_secret, issuers=[ISSUER_A]))
    os.replace(staged, path)
    assert check.verify(hs256("svc-2", new_secret)).subject == "checkout"
    assert refused(check, hs256()) == "its key id is not one of the configured keys"


def test_a_broken_file_is_checked_at_most_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_tokens, "RELOAD_CHECK_SECONDS", 3600.0)
    path = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A]))
    check = verifier(path)
    path.write_text("not json")
    with caplog.at_level(logging.ERROR, logger=jwt_tokens.__name__):
        for _ in range(5):
            check.verify(hs256())
            check.problem()
    assert not caplog.records
    monkeypatch.setattr(jwt_tokens, "RELOAD_CHECK_SECONDS", 0.0)
    with caplog.at_level(logging.ERROR, logger=jwt_tokens.__name__):
        check.verify(hs256())
        check.verify(hs256())
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


# Tokens bound to one command.


def test_a_bound_token_names_its_command(tmp_path: Path) -> None:
    check = verifier(write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A])))
    command_id = str(uuid.uuid4())
    assert check.verify(hs256(jti=command_id)).token_id == command_id


@pytest.mark.parametrize("jti", [None, ""])
def test_a_token_without_a_jti_is_refused(tmp_path: Path, jti: str | None) -> None:
    check = verifier(write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A])))
    assert refused(check, hs256(jti=jti)) == NOT_BOUND


def test_a_key_that_accepts_unbound_tokens_takes_only_young_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A], accepts_unbound=True))
    check = verifier(path, max_token_age_seconds=300)
    now = int(time.time())
    assert check.verify(hs256(jti=None, iat=now - 290)).token_id is None
    assert refused(check, hs256(jti=None, iat=now - 400)) == (
        "it is not bound to a command and was issued too long ago"
    )
    assert refused(check, hs256(jti=None, iat=None)) == (
        "it is not bound to a command, so it needs an 'iat' claim"
    )
    assert refused(check, hs256(jti=None, iat=now + 600)) == "it is not valid yet"
    # An empty jti is not "no jti": it binds to nothing, so it is not let through as unbound.
    assert refused(check, hs256(jti="")) == NOT_BOUND
    assert check.verify(hs256(jti="c-1", iat=now - 4000)).token_id == "c-1"


# The subject.


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("", "its subject is empty or too long"),
        ("x" * 129, "its subject is empty or too long"),
        ("CUST-1\nadmin", "its subject has control characters"),
        ("CUST-\u202e1", "its subject has control characters"),
        (42, "its subject is not a string"),
    ],
)
def test_an_unusable_subject_is_refused(tmp_path: Path, subject: object, reason: str) -> None:
    check = verifier(write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A])))
    assert refused(check, hs256(sub=subject)) == reason


def test_a_subject_of_128_characters_is_fine(tmp_path: Path) -> None:
    check = verifier(write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A])))
    assert check.verify(hs256(sub="x" * 128)).subject == "x" * 128


def test_role_and_tenant_that_are_not_strings_count_as_absent(tmp_path: Path) -> None:
    check = verifier(write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A])))
    verified = check.verify(hs256(role=["system"], tenant={"id": "t"}))
    assert (verified.role, verified.tenant) == (None, None)


# Development keys and minted tokens.


def test_dev_keys_name_their_issuer_and_old_files_are_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tokens.dev_auth_keys()
    [key] = json.loads(path.read_text())["keys"]
    assert key["issuers"] == [tokens.DEV_ISSUER]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old = {k: v for k, v in key.items() if k != "issuers"}
    path.write_text(json.dumps({"keys": [old]}))
    assert tokens.dev_auth_keys() == path
    [upgraded] = json.loads(path.read_text())["keys"]
    assert upgraded == {**old, "issuers": [tokens.DEV_ISSUER]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_minted_token_is_bound_to_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    keys = tokens.dev_auth_keys()
    settings = Settings(auth_keys_file=keys, auth_issuers=tokens.DEV_ISSUER)
    command_id = uuid.uuid4()
    token = tokens.mint(
        settings,
        subject="clerk-7",
        role="user",
        tenant="demo",
        scopes=["orders:write"],
        ttl_seconds=60,
        command_id=command_id,
    )
    check = verifier(keys, issuers=(tokens.DEV_ISSUER,))
    verified = check.verify(token)
    assert (verified.subject, verified.token_id) == ("clerk-7", str(command_id))
    unbound = tokens.mint(
        settings, subject="clerk-7", role="user", tenant="demo", scopes=[], ttl_seconds=60
    )
    assert "jti" not in jwt.decode(unbound, options={"verify_signature": False})
    assert "iat" in jwt.decode(unbound, options={"verify_signature": False})
    assert refused(check, unbound) == NOT_BOUND


@pytest.mark.parametrize("ttl", [0, -1, 3601])
def test_mint_refuses_lifetimes_out_of_range(tmp_path: Path, ttl: int) -> None:
    keys = write(tmp_path / "keys.json", oct_key(issuers=[ISSUER_A]))
    settings = Settings(auth_keys_file=keys, auth_issuers=ISSUER_A)
    with pytest.raises(ConfigurationError, match="1 to 3600 seconds"):
        tokens.mint(settings, subject="s", role="user", tenant="t", scopes=[], ttl_seconds=ttl)


def test_mint_signs_with_a_key_that_may_sign_for_the_issuer(tmp_path: Path) -> None:
    other_secret = uuid.uuid4().bytes * 2
    keys = write(
        tmp_path / "keys.json",
        rsa_public(issuers=[ISSUER_A]),
        oct_key("svc-b", other_secret, issuers=[ISSUER_B]),
        oct_key(
            "svc-a-service-only", uuid.uuid4().bytes * 2, issuers=[ISSUER_A], roles=["service"]
        ),
        oct_key("svc-a", issuers=[ISSUER_A]),
    )
    settings = Settings(auth_keys_file=keys, auth_issuers=ISSUER_A)
    token = tokens.mint(settings, subject="s", role="user", tenant="t", scopes=[], ttl_seconds=60)
    assert jwt.get_unverified_header(token)["kid"] == "svc-a"
    for kid, words in [("svc-b", "may not sign for issuer"), ("rsa-1", "cannot sign")]:
        with pytest.raises(ConfigurationError, match=words):
            tokens.mint(
                settings,
                subject="s",
                role="user",
                tenant="t",
                scopes=[],
                ttl_seconds=60,
                key_id=kid,
            )
