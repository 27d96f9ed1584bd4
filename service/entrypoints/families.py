"""The families a process runs with its settings: the built-in ones and EXTRA_FAMILIES."""

from __future__ import annotations

from typing import Any

from service.app import registry
from service.app.family import Family
from service.settings import Settings


def registered(settings: Settings) -> tuple[Family[Any], ...]:
    return registry.families(settings.topic_prefix, settings.extra_families)
