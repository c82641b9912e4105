"""Helpers for page tests: learners, their stored runs, and pages opened as a given learner.

Runs live in the run store (SIMPLECNN_RUNS_DIR, a temporary folder for the test session, see
conftest.py) and are reached through the server-wide classroom that the pages use too.
"""
from __future__ import annotations

import secrets
import time

from streamlit.testing.v1 import AppTest

from simplecnn.classroom import Classroom, RunView
from simplecnn.jobs import TrainingJob
from simplecnn.runstore import learner_key
from simplecnn.training import TrainConfig


def classroom() -> Classroom:
    """The classroom the pages use (one per process, st.cache_resource)."""
    from dashboard.state import classroom as shared
    return shared()


def new_learner() -> str:
    """A fresh learner token, as the app makes on a first visit."""
    return secrets.token_hex(16)


def key_of(token: str) -> str:
    return learner_key(token)


def start_run(token: str, config: TrainConfig, dataset_name: str = "mnist", num_classes: int = 10) -> TrainingJob:
    return classroom().start_run(key_of(token), config, dataset_name, num_classes)


def train_run(token: str, config: TrainConfig, timeout: float = 180) -> TrainingJob:
    """Start a run for the learner and wait until it has finished."""
    job = start_run(token, config)
    job.join(timeout)
    assert job.snapshot().status == "finished", job.snapshot().message
    return job


def runs_of(token: str) -> dict[str, RunView]:
    return {view.id: view for view in classroom().runs(key_of(token))}


def app_runs(at: AppTest) -> dict[str, RunView]:
    """The runs of the learner an AppTest session is (its token is in its session state)."""
    return runs_of(at.session_state["_learner_token"])


def page_as(path: str, token: str, model_key: str | None = None, timeout: float = 90) -> AppTest:
    """An AppTest of `path` opened with the learner's link (not yet run)."""
    at = AppTest.from_file(path, default_timeout=timeout)
    at.query_params["learner"] = token
    if model_key is not None:
        at.session_state["model_key"] = model_key
    return at


class SlotHolder:
    """Holds one of the scheduler's slots, so that a real job stays queued without using the CPU."""

    cancel_requested = False


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None
