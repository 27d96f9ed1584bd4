"""What the deployment files (deploy/kubernetes, compose.yaml) are checked against: the
service's own settings and image, read from the code and the Dockerfile rather than restated in
each test."""

from __future__ import annotations

import shlex
from pathlib import Path

from service.settings import Settings

REPO = Path(__file__).parents[1]


def settings_variables() -> set[str]:
    """Every environment variable the service reads: Settings has no prefix and no aliases, so
    each field's name, in capitals."""
    return {name.upper() for name in Settings.model_fields}


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set in the image (what a container runs
    with unless its deployment overrides them)."""
    # A backslash at a line's end continues the instruction on the next line.
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                found[name] = value
    return found
