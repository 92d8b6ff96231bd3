from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.storage.postgres import fresh_schema


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to an empty schema of the real PostgreSQL, dropped after the test."""
    with fresh_schema() as url:
        yield url
