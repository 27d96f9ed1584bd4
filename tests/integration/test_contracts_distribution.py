"""The contract installs alone: into a clean virtualenv, `order-lifecycle-contracts` brings
pydantic and nothing of the service (no asyncpg, FastStream or OpenTelemetry); its `client`
extra adds aiokafka and no more; what it installs reads a message of the service."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).parents[2] / "contracts"
SERVICE_ONLY = ("asyncpg", "faststream", "opentelemetry", "typer", "uvicorn", "cryptography")


def installed(python: Path) -> set[str]:
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    )
    return {package["name"].lower() for package in json.loads(listed.stdout)}


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("contracts-venv")
    venv.create(where, with_pip=True)
    return where / "bin" / "python"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the distribution's sources: pip builds in the tree it is given."""
    copy = tmp_path_factory.mktemp("contracts-src") / "contracts"
    shutil.copytree(CONTRACTS, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return copy


def pip_install(python: Path, requirement: str) -> None:
    # Not editable: what another team gets.
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", requirement],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_contract_installs_without_the_service(clean_python: Path, sources: Path) -> None:
    pip_install(clean_python, str(sources))
    packages = installed(clean_python)
    assert "order-lifecycle-contracts" in packages
    assert "pydantic" in packages
    assert not [p for p in packages if p.startswith(SERVICE_ONLY)], packages
    assert "aiokafka" not in packages
    assert "jsonschema" not in packages
    # The models read a message; the schemas ship with them.
    check = (
        "import json, importlib.resources as r, contracts;"
        "from contracts.purchase_orders import PurchaseOrderStatus;"
        "names = [e.name for e in r.files('contracts').joinpath('schemas').iterdir()];"
        "assert 'purchase_order.created.json' in names, names;"
        "print(contracts.__version__, PurchaseOrderStatus('open').value)"
    )
    ran = subprocess.run([clean_python, "-c", check], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["0.2.0", "open"]


def test_the_client_extra_adds_kafka_and_nothing_of_the_service(
    clean_python: Path, sources: Path
) -> None:
    pip_install(clean_python, f"{sources}[client,kit]")
    packages = installed(clean_python)
    assert {"aiokafka", "jsonschema"} <= packages
    assert not [p for p in packages if p.startswith(SERVICE_ONLY)], packages
    ran = subprocess.run(
        [clean_python, "-c", "import contract_tools.client, contract_tools.conformance"],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr


def test_the_service_runs_on_the_contract_version_it_pins() -> None:
    import contracts

    pinned = Path(__file__).parents[2].joinpath("pyproject.toml").read_text()
    assert f'"order-lifecycle-contracts[client,kit]=={contracts.__version__}"' in pinned
    assert sys.modules["contracts"].__file__ is not None
