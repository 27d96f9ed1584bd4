"""The settings each kind of command runs with, in one module every CLI can import.

`order-service` (cli.py) and its sub-apps (dead_letter_cli.py) both need them; keeping them here,
below both, means no sub-app has to import cli.py back.
"""

from __future__ import annotations

from pathlib import Path

from service.entrypoints.tokens import DEV_AUTH_KEYS, DEV_ISSUER
from service.settings import Settings

# Outside the dev stack's directory, which every `make run` empties: the CLI in a second
# terminal needs it.
DEV_MASTER_KEY = Path(".dev-master.key")


def service_settings() -> Settings:
    """What `serve` and `relay` run with: the environment alone. They never pick up the
    development key files, so a deployment that forgot its keys refuses to start instead."""
    return Settings()


def tool_settings() -> Settings:
    """For the tools beside a running service (send, show, tail, token, dead letters): like the
    database and broker defaults, they find the keys `make run` set up."""
    settings = Settings()
    found: dict[str, object] = {}
    if settings.master_key is None and settings.master_key_file is None and DEV_MASTER_KEY.exists():
        found["master_key_file"] = DEV_MASTER_KEY.resolve()
    if settings.auth_keys_file is None and DEV_AUTH_KEYS.exists():
        found["auth_keys_file"] = DEV_AUTH_KEYS.resolve()
        found["auth_issuers"] = settings.auth_issuers or DEV_ISSUER
    return settings.model_copy(update=found) if found else settings
