"""Fixtures for end-to-end tests: a whole stack started with `fleetmind up` on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.launcher import Stack, start_stack, stop_stack


@pytest.fixture(scope="module")
def tiny_stack(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"), str(tiny_model))
    yield stack
    stop_stack(stack)
