"""AppTest of the Train page's Layer health section (dashboard.health_panel): it shows the selected run's
health.json as the training process wrote it, says so when there is none or it is damaged, and its
charts draw the stored numbers. The numbers themselves are checked against independent computations
in tests/test_health.py."""
import base64
import json

import numpy as np
import pytest

from dashboard import nav
from simplecnn import health
from simplecnn.health import read_health
from simplecnn.training import TrainConfig
from tests.conftest import ROOT
from tests.helpers import new_learner, page_as, train_run

TRAIN = str(ROOT / nav.TRAIN)


@pytest.fixture(scope="module")
def trained():
    """A learner with one finished run, sampled every 2 steps (the worker inherits the variable)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(health.EVERY_ENV, "2")
        token = new_learner()
        job = train_run(token, TrainConfig(epochs=1, subset=500, log_every=2))  # 7 steps
    return token, job


def open_train(token):
    at = page_as(TRAIN, token, timeout=120)
    at.session_state["current_run_id"] = "run-1"
    at.run()
    assert not at.exception, at.exception
    return at


def values(array) -> np.ndarray:
    if isinstance(array, dict):  # plotly 6's base64 form
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).astype(float)
        shape = array.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray([np.nan if v is None else v for v in array], dtype=float)


def chart(at, key):
    found = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    assert found, key
    return json.loads(found[0].proto.spec)


def test_panel_shows_the_newest_sample_and_draws_every_stored_one(trained):
    token, job = trained
    stored = read_health(job.run.path)
    steps = [s["step"] for s in stored["samples"]]
    assert steps == [1, 2, 4, 6]
    at = open_train(token)
    assert "Layer health" in [h.value for h in at.header]
    text = " ".join(m.value for m in at.markdown)
    assert "Learning rate too high" in text and "Dropout 0.9" in text and "Batch normalization off" in text
    newest = stored["samples"][-1]
    metrics = {m.label: m.value for m in at.metric}
    for name, ratio in newest["update_ratio"].items():
        assert metrics[f"{name}: update / weight"] == f"{ratio:.1e}"
    for name, dead in newest["dead_relu"].items():
        assert metrics[f"{name}: dead"] == f"{100 * dead:.0f}%"
    assert any("4 samples, one every 2 steps; newest at step 6" in c.value for c in at.caption)

    ratio = chart(at, "health_ratio")
    lines = {t["name"]: t for t in ratio["data"]}
    assert set(lines) == {"conv1", "conv2", "fc1", "fc2"}
    for name, trace in lines.items():
        assert values(trace["x"]).tolist() == steps
        assert np.allclose(values(trace["y"]), [s["update_ratio"][name] for s in stored["samples"]])
    assert ratio["layout"]["yaxis"]["type"] == "log"
    assert len({t["marker"]["symbol"] for t in ratio["data"]}) == 4  # not told apart by colour alone
    assert len({t["line"]["dash"] for t in ratio["data"]}) == 4
    dead = chart(at, "health_dead")
    assert [values(t["y"]).tolist() for t in dead["data"]] == [
        [100 * s["dead_relu"][r] for s in stored["samples"]] for r in ("relu1", "relu2", "relu3")]
    weights = chart(at, "health_weights")
    heat = weights["data"][2]  # fc1
    counts = np.asarray([s["weights"]["fc1"] for s in stored["samples"]], dtype=float).T  # (bins, samples)
    assert np.allclose(values(heat["z"]), counts / counts.sum(axis=0))
    assert heat["type"] == "heatmap" and len(weights["data"]) == 4
    assert len(chart(at, "health_grads")["data"]) == 4


def test_panel_without_a_run_and_with_a_damaged_file(trained):
    token, job = trained
    fresh = page_as(TRAIN, new_learner(), timeout=120)
    fresh.run()
    assert not fresh.exception, fresh.exception
    assert any("Start a run to see its layers' health" in c.value for c in fresh.caption)
    path = job.run.path / health.HEALTH_FILE
    good = path.read_bytes()
    try:
        path.write_text('{"version": 1, "samples": [')
        at = open_train(token)
        assert any("cannot be shown" in i.value and "damaged" in i.value for i in at.info)
        assert not [c for c in at.get("plotly_chart") if c.proto.id and "health_" in c.proto.id]
        path.unlink()
        at.run()
        assert not at.exception, at.exception
        assert any("No layer health yet" in i.value for i in at.info)
    finally:
        path.write_bytes(good)
