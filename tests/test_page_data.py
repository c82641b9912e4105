"""Data page: the numbers it shows (class counts, class means, browsed images) checked against torch."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import dashboard.state as dstate
from simplecnn import data as sdata

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "data.py")


def decode(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or the typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            arr = arr.reshape([int(s) for s in str(shape).split(",")])
        return arr
    return np.asarray(value)


def chart(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        if element.key == key:
            return json.loads(element.proto.spec)
    raise AssertionError(f"no plotly chart with key {key!r}; found {[e.key for e in at.get('plotly_chart')]}")


def grid_titles(spec: dict) -> list[str]:
    return [a["text"] for a in spec["layout"]["annotations"]]


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_class_balance_is_the_label_count(app, mnist):
    for split, labels in (("train", mnist.train_labels), ("test", mnist.test_labels)):
        bars = chart(app, f"data_balance_{split}")["data"][0]
        expected = torch.bincount(labels, minlength=10).numpy()
        assert list(bars["x"]) == list(mnist.classes)
        np.testing.assert_array_equal(decode(bars["y"]), expected)
        assert expected.sum() == len(labels)
    assert any("5,421" in c.value and "6,742" in c.value for c in app.caption)  # smallest / largest train class


def test_mean_image_per_class_matches_torch(app, mnist):
    spec = chart(app, "data_means")
    assert grid_titles(spec) == list(mnist.classes)
    for c, trace in enumerate(spec["data"]):
        expected = mnist.train_images[mnist.train_labels == c].double().mean(dim=0).numpy() / 255.0
        np.testing.assert_allclose(decode(trace["z"]).reshape(28, 28), expected, atol=1e-5)
    # nearest-class-mean accuracy, recomputed here with a plain loop over classes
    means = torch.stack([mnist.train_images[mnist.train_labels == c].double().mean(0).flatten() / 255
                         for c in range(10)])  # (10, 784)
    test = mnist.test_images.double().flatten(1) / 255  # (10000, 784)
    dist = (test ** 2).sum(1, keepdim=True) - 2 * test @ means.T + (means ** 2).sum(1)  # (10000, 10) squared
    accuracy = 100 * (dist.argmin(1) == mnist.test_labels).double().mean().item()
    assert any(f"{accuracy:.1f}%" in c.value for c in app.caption), accuracy


def test_browse_a_class_page_by_page(app, mnist):
    app.radio(key="data_split").set_value("test")
    app.selectbox(key="data_class").set_value(3)
    app.run()
    app.number_input(key="data_page").set_value(2)
    app.run()
    assert not app.exception
    spec = chart(app, "data_grid")
    expected = (mnist.test_labels == 3).nonzero().flatten()[40:80]
    assert grid_titles(spec) == [f"#{i}" for i in expected.tolist()]
    for trace, index in zip(spec["data"], expected.tolist()):
        np.testing.assert_allclose(decode(trace["z"]).reshape(28, 28),
                                   mnist.test_images[index].double().numpy() / 255, atol=1e-6)
    assert any("1,010 in all" in c.value for c in app.caption)  # 1,010 test images of class 3
    # another class brings the pager back to page 1
    app.selectbox(key="data_class").set_value(5)
    app.run()
    assert app.number_input(key="data_page").value == 1
    first = (mnist.test_labels == 5).nonzero().flatten()[:40]
    assert grid_titles(chart(app, "data_grid")) == [f"#{i}" for i in first.tolist()]


def test_all_classes_and_shuffle(app, mnist):
    titles = grid_titles(chart(app, "data_grid"))
    assert titles[:3] == [f"#0: {int(mnist.train_labels[0])}", f"#1: {int(mnist.train_labels[1])}",
                          f"#2: {int(mnist.train_labels[2])}"]
    app.selectbox(key="data_class").set_value(7)
    app.toggle(key="data_shuffle").set_value(True)
    app.run()  # the seed is enabled once shuffling is on
    app.number_input(key="data_seed").set_value(11)
    app.run()
    shuffled = [int(t.lstrip("#")) for t in grid_titles(chart(app, "data_grid"))]
    in_order = (mnist.train_labels == 7).nonzero().flatten()[:40].tolist()
    assert len(shuffled) == len(set(shuffled)) == 40
    assert all(int(mnist.train_labels[i]) == 7 for i in shuffled)
    assert shuffled != in_order
    app.number_input(key="data_seed").set_value(12)
    app.run()
    other = [int(t.lstrip("#")) for t in grid_titles(chart(app, "data_grid"))]
    assert other != shuffled and all(int(mnist.train_labels[i]) == 7 for i in other)


def test_fashion_switch_explains_how_to_install_when_missing(monkeypatch):
    monkeypatch.setattr(sdata, "fashion_available", lambda: False)  # as on a machine without the package
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.run()
    assert not app.exception
    switch = app.radio(key="data_dataset")
    assert switch.disabled and switch.value == "mnist"
    assert any("apt-get install dataset-fashion-mnist" in i.value for i in app.info)


def fake_fashion() -> sdata.Dataset:
    """A small stand-in with Fashion-MNIST's class names and a known, uneven class balance."""
    g = torch.Generator().manual_seed(0)
    train_labels = torch.repeat_interleave(torch.arange(10), torch.arange(1, 11) * 10)  # 10, 20, ..., 100
    test_labels = torch.arange(10).repeat(5)
    return sdata.Dataset("fashion-mnist",
                         torch.randint(0, 256, (len(train_labels), 28, 28), generator=g, dtype=torch.uint8),
                         train_labels, torch.randint(0, 256, (50, 28, 28), generator=g, dtype=torch.uint8),
                         test_labels, sdata.FASHION_CLASSES)


def test_switch_sets_the_app_wide_dataset(monkeypatch):
    fake = fake_fashion()
    real_load = dstate.load_dataset
    monkeypatch.setattr(sdata, "fashion_available", lambda: True)
    monkeypatch.setattr(dstate, "load_dataset", lambda name="mnist": fake if name == "fashion-mnist"
                        else real_load(name))
    dstate.shared_dataset.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.run()
        assert not at.radio(key="data_dataset").disabled
        at.radio(key="data_dataset").set_value("fashion-mnist")
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["dataset_name"] == "fashion-mnist"
        bars = chart(at, "data_balance_train")["data"][0]
        assert list(bars["x"]) == list(sdata.FASHION_CLASSES)
        np.testing.assert_array_equal(decode(bars["y"]), np.arange(1, 11) * 10)
        means = chart(at, "data_means")["data"]
        expected = fake.train_images[fake.train_labels == 9].double().mean(0).numpy() / 255
        np.testing.assert_allclose(decode(means[9]["z"]).reshape(28, 28), expected, atol=1e-5)
        # and back: the page follows session_state, not its widget
        at.radio(key="data_dataset").set_value("mnist")
        at.run()
        assert at.session_state["dataset_name"] == "mnist"
        assert list(chart(at, "data_balance_train")["data"][0]["x"]) == list(sdata.MNIST_CLASSES)
    finally:
        dstate.shared_dataset.clear()
        st.cache_data.clear()
