"""Shared by the reliability tests: the fuzzing run's numbers, shown at the end of the session."""
from __future__ import annotations

import pytest

_SUMMARY: list[str] = []


@pytest.fixture
def summary() -> list[str]:
    """Lines to print in the terminal summary (how many programs the fuzzing run tried…)."""
    return _SUMMARY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _SUMMARY:
        terminalreporter.write_line(line)
