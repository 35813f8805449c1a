"""Markers of the tools' tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server, which the test installs and starts itself (skips if it cannot)")
