"""Fixtures for every test: telemetry never writes into the real home directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def telemetry_in_tmp_path(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Servers started by tests (and their subprocesses) record into a throwaway database."""
    path = tmp_path_factory.mktemp("telemetry") / "telemetry.sqlite3"
    monkeypatch.setenv("GHOSTCOMPLETE_TELEMETRY_PATH", str(path))
    return path
