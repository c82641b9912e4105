"""Per-learner state (runs, chosen model, chosen dataset) and the process-wide shared resources.

Shared, loaded once per server process (`st.cache_resource`): the datasets, the bundled model's
weights and the `Classroom` (run store + training queue). A learner is known by the token in their
link (`?learner=...`, see dashboard.identity); their runs live on disk in the run store, and
`st.session_state` only caches what was read (models by weights version). Learners never see each
other's runs or models: every lookup goes through the learner's own key.
"""
from __future__ import annotations

import copy
from pathlib import Path

import streamlit as st

from dashboard.identity import learner
from simplecnn.checkpoints import load_checkpoint
from simplecnn.classroom import Classroom, RunView
from simplecnn.data import DataError, Dataset, load_dataset
from simplecnn.jobs import TrainingJob
from simplecnn.model import SimpleCNN

BUNDLED_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "simplecnn_mnist.pt"
BUNDLED = "bundled"
MODEL_CACHE_SIZE = 3  # models (2.3 MB each) a session keeps in memory
RunEntry = RunView  # one model a learner can pick: a stored training run or an uploaded checkpoint


# -- shared, read-only --------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the dataset…")
def shared_dataset(name: str) -> Dataset:
    return load_dataset(name)


@st.cache_resource(show_spinner="Loading the bundled model…")
def _bundled_model_and_meta() -> tuple[SimpleCNN, dict]:
    return load_checkpoint(BUNDLED_MODEL_PATH)


@st.cache_resource(show_spinner="Reading the stored runs…")
def classroom() -> Classroom:
    """One per server: every learner's runs on disk (SIMPLECNN_RUNS_DIR) and the training queue."""
    return Classroom()


def scheduler():
    return classroom().scheduler


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
    """This learner's stored runs and uploaded models, oldest first, read through the classroom."""
    return {view.id: view for view in classroom().runs(learner())}


def current_run() -> RunEntry | None:
    """The run the Train page is working on (training, stopped or finished)."""
    run_id = st.session_state.get("current_run_id")
    view = classroom().run(learner(), run_id) if run_id else None
    if view is None:
        job = active_job()  # a reload or a new tab: reattach to the run that is training
        if job is not None:
            view = classroom().run(learner(), job.id)
        elif not st.session_state.get("train_reset"):  # else the newest trained run, as the learner left it
            view = next((r for r in reversed(list(runs().values())) if r.job is not None), None)
        if view is not None:
            st.session_state["current_run_id"] = view.id
    return view


def active_job() -> TrainingJob | None:
    """The learner's job that is queued or training now, if any (from any tab or earlier visit)."""
    return classroom().active_job(learner())


def model_choices() -> dict[str, str]:
    """key -> label of every model usable with the current dataset."""
    choices: dict[str, str] = {}
    if dataset_name() == "mnist" and bundled_model() is not None:
        choices[BUNDLED] = "Bundled model (pretrained)"
    for entry in runs().values():
        if entry.dataset != dataset_name() or entry.error:
            continue
        if entry.job is not None:
            snap = entry.snapshot()
            status = f"{snap.status}, epoch {snap.epoch}/{snap.epochs}"
            choices[entry.id] = f"{entry.id}: {entry.label} ({status})"
        else:
            choices[entry.id] = f"{entry.id}: {entry.label} (uploaded)"
    return choices


def get_model(key: str) -> SimpleCNN | None:
    """An eval-mode model for a choice key, cached in this session per weights version."""
    if key == BUNDLED:
        return bundled_model()
    entry = classroom().run(learner(), key)
    if entry is None or entry.error:
        return None
    cache = st.session_state.setdefault("_model_cache", {})
    version = entry.job.weights_version if entry.job is not None else -1
    cached = cache.get(key)
    if cached is None or cached[0] != version:
        try:
            model = entry.job.model() if entry.job is not None else load_checkpoint(entry.record.dir.latest_path)[0]
        except ValueError:
            return None
        cache.pop(key, None)
        cached = cache[key] = (version, model)
        while len(cache) > MODEL_CACHE_SIZE:
            cache.pop(next(iter(cache)))  # oldest first: a session holds a few models, not every run
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
