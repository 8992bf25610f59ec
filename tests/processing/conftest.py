from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from fastapi import FastAPI

from proca_server.app_state import state_of
from proca_server.processing.messages import Publication


class RecordingPipeline:
    """What the links hand over after commit (stands where the broker plugs in)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Publication], list[int]]] = []

    async def after_commit(
        self, publications: Sequence[Publication], action_ids: Sequence[int]
    ) -> None:
        self.calls.append((list(publications), list(action_ids)))


@pytest.fixture
def pipeline(app: FastAPI) -> Iterator[RecordingPipeline]:
    recorder = RecordingPipeline()
    previous = state_of(app).pipeline
    state_of(app).pipeline = recorder
    yield recorder
    state_of(app).pipeline = previous
