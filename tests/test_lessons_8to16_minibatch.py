"""Lesson 16: mini-batch gradients are averages of per-image gradients, with noise falling like 1/√B."""
import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from simplecnn.data import to_float
from simplecnn.lessons import minibatch as mb
from simplecnn.lessons.training_step import fresh_model
from tests.test_pages_learn_b import LEARN, _model


def test_batch_gradient_is_the_mean_of_per_image_gradients(mnist):
    model = fresh_model()
    x, y = to_float(mnist.train_images[:4]), mnist.train_labels[:4]
    batch = mb.flat_gradient(model, x, y)
    singles = torch.stack([mb.flat_gradient(model, x[i:i + 1], y[i:i + 1]) for i in range(4)])
    assert torch.allclose(batch, singles.mean(0), atol=1e-6)  # eval mode: images do not interact


def test_noise_falls_like_one_over_root_b_on_a_fresh_model(mnist):
    x, y = to_float(mnist.train_images[:4096]), mnist.train_labels[:4096]
    results, ref = mb.gradient_noise(fresh_model(), x, y, (4, 16, 64, 256), batches=6, reference_size=1024)
    assert ref == 1024 and [r.batch_size for r in results] == [4, 16, 64, 256]
    assert -0.7 < mb.noise_scaling(results) < -0.35  # measured −0.54 (batches=8)
    cos = [np.mean(r.cosines) for r in results]
    assert cos == sorted(cos) and cos[-1] > 0.7
    assert mb.noise_scaling([mb.BatchNoise(b, [], [3 / b ** 0.5], 0.0) for b in (4, 16, 64)]) == pytest.approx(-0.5)


def test_a_trained_models_loss_sits_on_a_few_images(bundled_path, mnist):
    """The page's explanation for the trained model: 10 of 1,024 images carry most of its loss."""
    from simplecnn.checkpoints import load_checkpoint

    trained = load_checkpoint(bundled_path)[0].eval()
    x, y = to_float(mnist.train_images[:1024]), mnist.train_labels[:1024]
    assert mb.loss_concentration(trained, x, y, 10) > 0.5  # measured 0.83
    assert mb.loss_concentration(fresh_model(), x, y, 10) < 0.03  # even spread: 10/1024 ≈ 0.01


@pytest.mark.parametrize("with_model", [False, True])
def test_minibatch_page(with_model):
    at = AppTest.from_file(str(LEARN / "16_minibatch_noise.py"), default_timeout=60)
    at.session_state["_bundled_copy"] = _model() if with_model else None
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.get("plotly_chart")  # nothing computed before Measure
    at.slider(key="mb_batches").set_value(4).run()
    at.button(key="mb_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.get("plotly_chart")  # the numbers answer the page's question: hidden until checked or skipped
    at.button(key="mb_reveal").click().run()
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert table["batch size B"].tolist() == [4, 16, 64, 256]
    at.number_input(key="mb_seed").set_value(5).run()
    assert any("earlier settings" in c.value for c in at.caption)
