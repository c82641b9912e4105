"""Faults and bad input that need no browser, through the whole app (app.py) with AppTest.

Each case must end with a clear message on the page, no exception box, and nothing lost: the
learner's earlier runs and models (stored on the server, see tests/helpers.py) are still there, unchanged.
"""
from __future__ import annotations

import gzip
import io
import pickle
import re
import shutil
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from dashboard import nav
from simplecnn.checkpoints import MAX_CHECKPOINT_BYTES, checkpoint_bytes, load_checkpoint
from simplecnn.model import SimpleCNN
from tests.conftest import ROOT
from tests.helpers import app_runs, classroom, key_of, page_as

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def run_pages_through_app_py(monkeypatch):
    """Make AppTest run every page through app.py and its st.navigation, as the real server does.

    With a `pages/` folder beside app.py, Streamlit starts each AppTest run in its old multipage
    mode (AppTest resets PagesManager.uses_pages_directory before every run), and switch_page()
    then executes pages/<name>.py on its own, skipping app.py. Renaming the folder (e.g. to
    app_pages/) would make this fixture a no-op.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(nav.TRAIN)
    at.run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, at.exception


def button_disabled(at: AppTest, label: str) -> bool:
    return next(b for b in at.button if b.label == label).disabled


def upload(at: AppTest, name: str, content: bytes) -> None:
    at.file_uploader(key="train_upload").set_value((name, content, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def wait_for(at: AppTest, condition, timeout: float = 120.0) -> None:
    """Poll the learner's stored runs (their jobs' watcher threads run in this process) until
    `condition(runs)` holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition(app_runs(at)):
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def stored(runs) -> dict:
    """What must not change when a fault is refused: each run's kind, metadata as on disk (it holds the
    time it was last written), error, and the very job the classroom keeps for it."""
    return {i: (r.kind, r.record.meta, r.error, id(r.job) if r.job else None) for i, r in runs.items()}


def all_idle(runs) -> bool:
    return all(not r.snapshot().active for r in runs.values() if r.job)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained_at() -> AppTest:
    """A Train page whose session already holds one small finished run (the work not to lose)."""
    at = train_page()
    at.select_slider(key="train_subset").set_value(500)
    at.number_input(key="train_epochs").set_value(1)
    at.run()
    click(at, "Start")
    wait_for(at, all_idle)
    at.run()
    (entry,) = app_runs(at).values()
    assert entry.snapshot().status == "finished"
    return at


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the plain pickle's protocol
def test_uploaded_files_that_are_not_checkpoints_are_refused_and_nothing_is_lost(trained_at, tmp_path):
    at = trained_at
    runs_before = app_runs(at)
    (first,) = runs_before.values()
    first_weights = weights(first.job.model())
    stored_before = stored(runs_before)
    model_key_before = at.session_state["model_key"]
    marker = tmp_path / "pwned"

    class RunsCode:  # unpickling this would create the marker file
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('the pickle ran')",))

    torch_pickle = io.BytesIO()
    torch.save({"state_dict": RunsCode(), "meta_json": "{}"}, torch_pickle)
    other_net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 26 * 26, 10))
    other_arch = io.BytesIO()
    torch.save(other_net.state_dict(), other_arch)
    wrong_width = checkpoint_bytes(SimpleCNN(num_classes=7))  # a real SimpleCNN file, but 7 outputs
    cases = [
        ("notes.pt", b"these are my notes, not a network\n" * 50,
         "Could not load notes.pt: Not a readable checkpoint"),
        ("truncated.pt", checkpoint_bytes(SimpleCNN())[:100_000],
         "Could not load truncated.pt: Not a readable checkpoint"),
        ("other_architecture.pt", other_arch.getvalue(),
         "Could not load other_architecture.pt: The checkpoint holds a different architecture than SimpleCNN"),
        ("evil.pt", torch_pickle.getvalue(),
         "Could not load evil.pt: Refused to load: the file contains Python objects other than tensors"),
        # A bare pickle is not even a zip archive: refused by its missing zip directory, never unpickled.
        ("evil.pth", pickle.dumps(RunsCode()),
         "Could not load evil.pth: Refused to load: the file is a bare Python pickle, which could run code"),
        ("seven_classes.pt", wrong_width,
         "Could not load seven_classes.pt: the network has 7 outputs, but mnist has 10 classes."),
        # Over the limit: the server's uploader refuses it first (tests/e2e/test_faults.py); the page
        # checks again, so a file that got through some other way is still refused.
        ("huge.pt", b"\0" * (MAX_CHECKPOINT_BYTES + 1024 * 1024),
         "huge.pt is 11.5 MB; a SimpleCNN checkpoint is about 2.4 MB (limit 10 MB)."),
    ]
    for name, content, message in cases:
        upload(at, name, content)
        assert any(e.startswith(message) for e in errors(at)), (name, errors(at))
        assert not marker.exists(), f"{name}: the pickle ran code"
        assert stored(app_runs(at)) == stored_before, f"{name} changed the learner's models"
        assert at.session_state["model_key"] == model_key_before, f"{name} changed the chosen model"
    # A real checkpoint (the first run's own weights) is kept as one of the learner's runs, an upload.
    good = checkpoint_bytes(first.job.model(), config=first.job.config.to_dict())
    upload(at, "mine.pt", good)
    assert errors(at) == [], errors(at)
    runs = app_runs(at)
    (added,) = [i for i in runs if i not in runs_before]
    assert added == "run-2" and at.session_state["model_key"] == added
    assert any(s.value.startswith(f"Loaded mine.pt as {added}.") for s in at.success), [s.value for s in at.success]
    assert runs[added].kind == "uploaded" and runs[added].job is None and runs[added].error is None
    assert same_weights(weights(load_checkpoint(runs[added].record.dir.latest_path)[0]), first_weights)
    assert stored({i: runs[i] for i in runs_before}) == stored_before  # the trained run is untouched
    for page in (nav.RESULTS, nav.DRAW, nav.INSIDE):  # the refused files left no model behind to break a page
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
    at.switch_page(nav.TRAIN)
    at.run()
    assert not at.exception, at.exception
    assert same_weights(weights(first.job.model()), first_weights)
    assert first.snapshot().status == "finished"


def test_learning_rates_1_and_10_diverge_with_a_clear_message_and_keep_earlier_runs(trained_at):
    at = trained_at
    (first,) = [r for r in app_runs(at).values() if r.job]
    first_weights, first_history = weights(first.job.model()), first.snapshot().history.to_dict()
    at.select_slider(key="train_lr").set_value(1.0)
    at.run()
    for custom_lr in (0.0, 10.0):  # 0 = use the slider (1.0), then exactly 10
        at.number_input(key="train_custom_lr").set_value(custom_lr)
        at.run()
        click(at, "Start")
        wait_for(at, all_idle)
        at.run()
        assert not at.exception, at.exception
        lr = custom_lr or 1.0
        message = next(e for e in errors(at) if e.startswith("Training diverged"))
        assert f"lower the learning rate (now {lr:g}), e.g. to {lr / 10:g}" in message, message
    statuses = [r.snapshot().status for r in app_runs(at).values() if r.job]
    assert statuses[0] == "finished" and statuses[-2:] == ["diverged", "diverged"], statuses
    table = at.dataframe[0].value
    assert table["status"].tolist()[-2:] == ["diverged", "diverged"] and table["status"].tolist()[0] == "finished"
    assert same_weights(weights(first.job.model()), first_weights)  # the earlier run is untouched
    assert first.snapshot().history.to_dict() == first_history
    at.number_input(key="train_custom_lr").set_value(0.0)
    at.select_slider(key="train_lr").set_value(1e-3)
    at.run()


def test_a_batch_larger_than_the_subset_is_explained_and_trains_as_one_batch(trained_at):
    at = trained_at
    at.select_slider(key="train_subset").set_value(500)
    at.select_slider(key="train_batch_size").set_value(1024)
    at.number_input(key="train_epochs").set_value(2)
    click(at, "Reset")  # a fresh run: the hint shows before Start
    infos = [i.value for i in at.info]
    assert any("The batch size (1024) is larger than the training split (400 images): each epoch will be a "
               "single batch of 400." in i for i in infos), infos
    click(at, "Start")
    wait_for(at, all_idle)
    at.run()
    run = app_runs(at)[at.session_state["current_run_id"]]
    snap = run.snapshot()
    assert snap.status == "finished" and snap.history.batches_per_epoch == 1 and len(snap.history.epochs) == 2
    assert snap.history.images_seen == 2 * 400
    at.select_slider(key="train_batch_size").set_value(64)
    at.run()


@pytest.mark.parametrize("epochs", [0, -3, 101, 10**6])
def test_epochs_outside_the_widget_bounds_never_reach_the_trainer(epochs):
    at = train_page()
    widget = at.number_input(key="train_epochs")
    assert (widget.min, widget.max) == (1, 100)
    widget.set_value(epochs)
    at.run()
    assert not at.exception, at.exception
    value = at.number_input(key="train_epochs").value
    assert 1 <= value <= 100, value  # Streamlit resets an out-of-range value to the widget's default
    assert any(f"EPOCHS = {value}\n" in c.value for c in at.code)  # what Start would train


REFUSED_SECOND_RUN = re.compile(r"\*\*Not started\.\*\* Your run run-1 is (queued|running): one run per learner "
                                r"trains or waits at a time\. Stop it, or wait until it finishes\.")


def test_start_twice_makes_one_run_and_stop_twice_is_harmless():
    at = train_page()
    at.select_slider(key="train_subset").set_value(5000)
    at.number_input(key="train_epochs").set_value(5)
    at.run()
    click(at, "Start")
    assert at.session_state["current_run_id"] == "run-1"
    scheduler = app_runs(at)["run-1"].job.scheduler
    # A second Start while the first run is active (the button is never disabled) makes no new run:
    # the classroom refuses it, one queued-or-running run per learner.
    click(at, "Start")
    assert any(REFUSED_SECOND_RUN.fullmatch(e) for e in errors(at)), errors(at)
    assert list(app_runs(at)) == ["run-1"] and scheduler.running + scheduler.waiting == 1
    assert at.session_state["current_run_id"] == "run-1"
    # Stop it once it has really trained (a batch reported), so the stop has work to keep.
    wait_for(at, lambda runs: runs["run-1"].snapshot().status == "running" and runs["run-1"].snapshot().latest)
    at.run()
    click(at, "Stop")
    job = app_runs(at)["run-1"].job
    assert job.stop() is False  # a second stop while it is stopping (or stopped): no effect, no error
    at.run()
    if not button_disabled(at, "Stop"):  # still stopping: the learner presses Stop again
        click(at, "Stop")
    job.join(60)
    wait_for(at, all_idle)
    at.run()
    assert not at.exception, at.exception
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.can_resume and not job.thread_alive
    assert snap.history.images_seen > 0 and (snap.epoch, snap.batch) > (0, 0)  # where Resume goes on from
    assert button_disabled(at, "Stop") and not button_disabled(at, "Resume")
    assert any("Press **Resume** to continue from here." in w.value for w in at.warning)
    assert list(app_runs(at)) == ["run-1"] and scheduler.running == 0
    # The stopped run is stored: a new tab with the learner's link shows it, ready to resume.
    again = page_as(str(ROOT / nav.TRAIN), at.session_state["_learner_token"], timeout=120)
    again.run()
    assert not again.exception, again.exception
    assert again.session_state["current_run_id"] == "run-1"
    assert button_disabled(again, "Stop") and not button_disabled(again, "Resume")
    assert again.dataframe[-1].value["status"].tolist() == ["stopped"]


def test_a_run_over_the_per_run_budget_is_refused_before_it_starts():
    """Images x epochs above SIMPLECNN_MAX_RUN_IMAGES: a warning before Start, a refusal on Start."""
    budget = classroom().limits.max_run_images
    n_train = 24_000  # 30,000 images, 20 % held out for validation
    epochs = budget // n_train + 1
    if epochs > 100:
        pytest.skip(f"the per-run budget ({budget:,}) allows more than the widget's 100 epochs")
    at = train_page()
    at.select_slider(key="train_subset").set_value(30_000)
    at.number_input(key="train_epochs").set_value(epochs)
    at.run()
    assert not at.exception, at.exception
    assert at.number_input(key="train_epochs").value == epochs
    within = f"use at most {epochs - 1} epoch{'s' if epochs - 1 != 1 else ''} with these 24,000 training images"
    over = f"This run would train on {n_train * epochs:,} images (24,000 × {epochs} epochs); this server allows {budget:,}"
    assert any(w.value.startswith(over) and within in w.value for w in at.warning), [w.value for w in at.warning]
    click(at, "Start")
    assert any(e.startswith(f"**Not started.** {over}") and within in e for e in errors(at)), errors(at)
    assert app_runs(at) == {}
    assert classroom().store.run_dirs(key_of(at.session_state["_learner_token"])) == []


def test_a_missing_data_file_shows_which_file_and_the_fix(monkeypatch, tmp_path):
    """Run with SIMPLECNN_DATA_DIR pointing at a copy of data/ that lacks one file."""
    from dashboard.state import shared_dataset
    from simplecnn import data

    copy = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "mnist", copy / "mnist")
    (copy / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(copy))

    shared_dataset.clear()  # the app caches the dataset by name, per process: drop it before and after
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        for page in (nav.DRAW, nav.DATA, nav.TRAIN):
            at.switch_page(page)
            at.run()
            if page == nav.TRAIN:  # Start needs the data: it must say so and store no run
                click(at, "Start")
                assert app_runs(at) == {}
                assert classroom().store.run_dirs(key_of(at.session_state["_learner_token"])) == []
            assert not at.exception, (page, at.exception)
            message = " ".join(errors(at))
            assert "Missing data file:" in message and "t10k-labels-idx1-ubyte.gz" in message, (page, message)
            assert "git checkout -- data/" in message, (page, message)
    finally:
        monkeypatch.undo()
        shared_dataset.clear()


def test_a_corrupt_data_file_is_caught_by_its_checksum(monkeypatch, tmp_path):
    """The same file with one label changed: gzip reads it fine, only the MD5 can tell."""
    from dashboard.state import shared_dataset
    from simplecnn import data

    copy = tmp_path / "data" / "mnist"
    shutil.copytree(ROOT / "data" / "mnist", copy)
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # the first test label, one digit off
    labels.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(copy.parent))
    shared_dataset.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page(nav.DRAW)
        at.run()
        assert not at.exception, at.exception
        message = " ".join(errors(at))
        assert "Checksum mismatch in" in message and "t10k-labels-idx1-ubyte.gz" in message, message
        assert "git checkout -- data/" in message
    finally:
        monkeypatch.undo()
        shared_dataset.clear()
