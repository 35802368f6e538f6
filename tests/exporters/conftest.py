"""Fixtures shared by the exporters' tests."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    """A migrated database's engine (test modules that need another kind define their own)."""
    return db_engine
