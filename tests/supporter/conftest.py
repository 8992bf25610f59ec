from tests.email.worker_world import deps
from tests.processing.conftest import pipeline

__all__ = ["deps", "pipeline"]
