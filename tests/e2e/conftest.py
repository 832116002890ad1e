"""The e2e tests use the session stack and helpers defined in tests/conftest.py."""
