"""The production tests use the session's production stack (PostgreSQL, Kafka, two replicas of
every app) from tests/conftest.py."""

import pytest


@pytest.fixture(scope="session")
def stack(production_stack):
    return production_stack
