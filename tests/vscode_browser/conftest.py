"""Failure reports for the browser tests: the outcome of each test's call phase is kept on
the test item, so that a fixture can save a screenshot and the logs when it failed."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call":
        item.user_properties.append(("call_failed", report.failed))
    return report
