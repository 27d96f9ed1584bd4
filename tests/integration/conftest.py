"""Fixtures for tests that drive the processor against a real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.adapters.database import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 8)
    yield pool
    await pool.close()
