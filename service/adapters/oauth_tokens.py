"""Where the access token of SASL/OAUTHBEARER comes from: a file (a projected service-account
token, or one a sidecar keeps fresh), read again whenever it changes, or a provider of the
deployment's own ('package.module:factory', returning an aiokafka AbstractTokenProvider) for
identity providers that need code."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from aiokafka.abc import AbstractTokenProvider

from service.errors import ConfigurationError


class TokenProvider(Protocol):
    """What gives OAUTHBEARER's access token: aiokafka's AbstractTokenProvider."""

    async def token(self) -> str: ...


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """The token a file holds. Read at each (re)connection only when the file changed, so a
    token renewed on disk is used from the next connection on, and an unchanged one costs a
    stat."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None
        self._token = ""

    async def token(self) -> str:
        try:
            status = self._path.stat()
            seen = (status.st_mtime_ns, status.st_size)
            if seen != self._seen:
                self._token = self._path.read_text().strip()
                self._seen = seen
        except OSError as error:
            raise ConfigurationError(
                f"KAFKA_SASL_OAUTH_TOKEN_FILE {self._path}: {error.strerror}"
            ) from error
        if not self._token:
            raise ConfigurationError(f"KAFKA_SASL_OAUTH_TOKEN_FILE {self._path} is empty")
        return self._token


def provider_from(path: str) -> TokenProvider:
    """A provider from 'package.module:factory'; any failure is a ConfigurationError."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"KAFKA_SASL_OAUTH_TOKEN_PROVIDER: {path!r} is not 'package.module:factory'"
        )
    try:
        provider = getattr(importlib.import_module(module_name), attribute)()
    except Exception as error:
        raise ConfigurationError(
            f"KAFKA_SASL_OAUTH_TOKEN_PROVIDER: {path!r} could not be loaded:"
            f" {type(error).__name__}: {error}"
        ) from error
    if not isinstance(provider, AbstractTokenProvider):
        raise ConfigurationError(
            f"KAFKA_SASL_OAUTH_TOKEN_PROVIDER: {path!r} returned {type(provider).__name__},"
            " not an aiokafka AbstractTokenProvider"
        )
    checked: TokenProvider = provider
    return checked
