"""Fixtures for every test: telemetry never writes into the real home directory, and no test
sees the models installed on this machine."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(autouse=True, scope="session")
def no_installed_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No test sees the models installed on this machine: ``backend.kind: "auto"`` (the
    default) would pick one. The models directory of every test, and of every server a test
    starts, is an empty folder; tests of ``auto`` install into their own."""
    empty = tmp_path_factory.mktemp("no-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GHOSTCOMPLETE_MODELS", str(empty))
        yield empty
