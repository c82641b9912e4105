"""Per-learner state (runs, chosen model, chosen dataset) and the process-wide shared resources.

Shared, read-only, loaded once per server process (`st.cache_resource`): the datasets, the bundled
model's weights and the training scheduler. Everything a learner creates lives in
`st.session_state`, so browser sessions never see each other's runs or models.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import DataError, Dataset, load_dataset
from simplecnn.jobs import JobSnapshot, TrainingJob, TrainingScheduler
from simplecnn.model import SimpleCNN

BUNDLED_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "simplecnn_mnist.pt"
BUNDLED = "bundled"


@dataclass
class RunEntry:
    """One model a learner can pick: a training run of this session, or an uploaded checkpoint."""

    id: str
    label: str
    dataset: str
    job: TrainingJob | None = None  # set for runs trained in this session
    model: SimpleCNN | None = None  # set for uploaded checkpoints
    meta: dict = field(default_factory=dict)

    def snapshot(self) -> JobSnapshot | None:
        return self.job.snapshot() if self.job else None


# -- shared, read-only --------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the dataset…")
def shared_dataset(name: str) -> Dataset:
    return load_dataset(name)


@st.cache_resource(show_spinner="Loading the bundled model…")
def _bundled_model_and_meta() -> tuple[SimpleCNN, dict]:
    return load_checkpoint(BUNDLED_MODEL_PATH)


@st.cache_resource
def scheduler() -> TrainingScheduler:
    """One queue per server: SIMPLECNN_MAX_TRAININGS trainings at once (default 1)."""
    return TrainingScheduler()


@st.cache_resource(show_spinner="Evaluating the bundled model on the test set…")
def bundled_test_evaluation(dataset_name: str):
    """The bundled model's test-set result, computed once per server and shared read-only: in a
    class every learner who opens Results would otherwise spend the CPU on the same 10,000 images."""
    from simplecnn.evaluation import evaluate

    ds = shared_dataset(dataset_name)
    return evaluate(_bundled_model_and_meta()[0], ds.test_images, ds.test_labels, num_classes=ds.num_classes)


def bundled_model_meta() -> dict:
    try:
        return _bundled_model_and_meta()[1]
    except ValueError:
        return {}


def bundled_model() -> SimpleCNN | None:
    """This session's own copy of the bundled model (hooks on it never reach other sessions)."""
    if "_bundled_copy" not in st.session_state:
        try:
            st.session_state["_bundled_copy"] = copy.deepcopy(_bundled_model_and_meta()[0]).eval()
        except ValueError:
            st.session_state["_bundled_copy"] = None
    return st.session_state["_bundled_copy"]


# -- per learner ---------------------------------------------------------------------------------
def dataset_name() -> str:
    return st.session_state.setdefault("dataset_name", "mnist")


def dataset() -> Dataset:
    """The dataset this learner chose (the whole app follows the Data page's switch)."""
    try:
        return shared_dataset(dataset_name())
    except DataError:
        if dataset_name() != "mnist":
            st.session_state["dataset_name"] = "mnist"
            return shared_dataset("mnist")
        raise


def runs() -> dict[str, RunEntry]:
    """This session's runs and uploaded models, oldest first."""
    return st.session_state.setdefault("runs", {})


def add_run(entry: RunEntry) -> RunEntry:
    runs()[entry.id] = entry
    return entry


def current_run() -> RunEntry | None:
    """The run the Train page is working on (training, stopped or finished)."""
    run_id = st.session_state.get("current_run_id")
    return runs().get(run_id) if run_id else None


def active_job() -> TrainingJob | None:
    """The session's job that is queued or training now, if any."""
    for entry in runs().values():
        if entry.job is not None and entry.snapshot().active:
            return entry.job
    return None


def model_choices() -> dict[str, str]:
    """key -> label of every model usable with the current dataset."""
    choices: dict[str, str] = {}
    if dataset_name() == "mnist" and bundled_model() is not None:
        choices[BUNDLED] = "Bundled model (pretrained)"
    for entry in runs().values():
        if entry.dataset != dataset_name():
            continue
        if entry.job is not None:
            snap = entry.snapshot()
            status = f"{snap.status}, epoch {snap.epoch}/{snap.epochs}"
            choices[entry.id] = f"{entry.id}: {entry.label} ({status})"
        else:
            choices[entry.id] = f"{entry.id}: {entry.label} (uploaded)"
    return choices


def get_model(key: str) -> SimpleCNN | None:
    """An eval-mode model for a choice key; a run's newest weights, cached per weights version."""
    if key == BUNDLED:
        return bundled_model()
    entry = runs().get(key)
    if entry is None:
        return None
    if entry.job is None:
        return entry.model
    cache = st.session_state.setdefault("_model_cache", {})
    version = entry.job.weights_version
    cached = cache.get(key)
    if cached is None or cached[0] != version:
        cached = cache[key] = (version, entry.job.model())
    return cached[1]


def selected_model_key() -> str | None:
    """The learner's chosen model, defaulting to the current run if any, else the bundled one."""
    choices = model_choices()
    key = st.session_state.get("model_key")
    if key in choices:
        return key
    run = current_run()
    if run is not None and run.id in choices:
        return run.id
    return next(iter(choices), None)


def active_model() -> tuple[SimpleCNN | None, str]:
    """(model, label) of the learner's chosen model; (None, reason) when there is none yet."""
    key = selected_model_key()
    if key is None:
        return None, (f"No model for {dataset_name()} yet: train one on the Train page."
                      if dataset_name() != "mnist" else "The bundled model is missing: train one on the Train page.")
    return get_model(key), model_choices()[key]


def model_picker(label: str = "Model", help: str | None = None) -> tuple[SimpleCNN | None, str]:
    """A selectbox over model_choices(), shared across pages via session_state["model_key"]."""
    choices = model_choices()
    if not choices:
        return active_model()
    options = list(choices)
    current = selected_model_key()
    choice = st.selectbox(label, options, index=options.index(current), format_func=choices.get, help=help)
    st.session_state["model_key"] = choice
    return active_model()


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:6]}"


@st.cache_resource
def _untrained_model() -> SimpleCNN:
    import torch
    torch.manual_seed(0)
    return SimpleCNN().eval()


def lesson_model() -> tuple[SimpleCNN, str]:
    """The learner's model for a lesson, or (with a note saying why) an untrained SimpleCNN.

    The untrained model is shared read-only: lessons must work on a copy before changing anything.
    """
    model, label = active_model()
    if model is not None:
        return model, label
    st.info(label)
    return _untrained_model(), "untrained SimpleCNN (random weights; no trained model is available)"
