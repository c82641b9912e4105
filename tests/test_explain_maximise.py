"""simplecnn.explain.maximise: activation maximisation and the top test images, checked against
computations made here (the network's stages called one by one, separate hooks, a hand-written Adam
loop, scipy's Gaussian filter, brute-force sorting)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import ndimage

from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import to_float
from simplecnn.explain import maximise
from simplecnn.explain.maximise import Settings, Unit
from simplecnn.model import SimpleCNN

UNITS = [Unit("class", 3), Unit("conv1", 5, "mean"), Unit("conv2", 10, "centre"), Unit("fc1", 42)]


@pytest.fixture(scope="module")
def bundled(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


def by_hand(model, x: torch.Tensor, unit: Unit) -> torch.Tensor:
    """The unit's value (N,) from the model's stages called one after the other (no hooks)."""
    m = model.eval()
    with torch.no_grad():
        a1 = m.batch1(m.conv1(x))  # (N, 32, 24, 24) before ReLU
        a2 = m.batch2(m.conv2(m.max1(m.relu1(a1))))  # (N, 64, 8, 8) before ReLU
        h = m.fc1(m.max2(m.relu2(a2)).reshape(len(x), -1))  # (N, 512) before ReLU
        logits = m.fc2(m.relu3(h))
    if unit.layer == "class":
        return logits[:, unit.index]
    if unit.layer == "fc1":
        return h[:, unit.index]
    a = (a1 if unit.layer == "conv1" else a2)[:, unit.index]
    return a.mean(dim=(1, 2)) if unit.reduce == "mean" else a[:, a.shape[1] // 2, a.shape[2] // 2]


def total_variation(image: torch.Tensor) -> float:
    z = image.reshape(28, 28).double()
    return float((z[1:] - z[:-1]).abs().sum() + (z[:, 1:] - z[:, :-1]).abs().sum())


def no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


# -- the search ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: f"{u.layer}-{u.index}-{u.reduce}")
def test_the_objective_rises_and_is_what_the_network_computes_on_the_reported_image(bundled, unit):
    reports = list(maximise.maximise(bundled, unit, steps=120, every=20))
    assert [r.step for r in reports] == [0, 20, 40, 60, 80, 100, 120]
    images = torch.cat([r.image for r in reports])
    np.testing.assert_allclose([r.objective for r in reports], by_hand(bundled, images, unit).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert reports[-1].objective > reports[0].objective + 0.3
    assert images.min() >= 0.0 and images.max() <= 1.0
    torch.testing.assert_close(reports[0].image, maximise.start_image(0))


def test_reported_objective_equals_a_separate_hook_on_the_module(bundled):
    """A hook of the test's own on fc1 (not the module's helper) reads the same numbers."""
    seen = []
    reports = list(maximise.maximise(bundled, Unit("fc1", 7), steps=60, every=30))
    handle = bundled.fc1.register_forward_hook(lambda _m, _i, out: seen.append(out[:, 7].detach()))
    try:
        with torch.no_grad():
            for r in reports:
                bundled(r.image)
    finally:
        handle.remove()
    np.testing.assert_allclose([r.objective for r in reports], torch.cat(seen).numpy(), rtol=1e-6, atol=1e-6)


def test_without_regularisers_the_search_is_plain_adam_on_the_pixels(bundled):
    """jitter 0, blur 0, decay 0: the same images as a hand-written Adam loop with clamping."""
    unit, steps = Unit("class", 3), 40
    x = maximise.start_image(0).clone().requires_grad_(True)
    adam = torch.optim.Adam([x], lr=0.05)
    for _ in range(steps):
        adam.zero_grad()
        (-bundled.eval()(x)[0, 3]).backward()
        adam.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    bundled.zero_grad(set_to_none=True)
    last = list(maximise.maximise(bundled, unit, steps=steps, every=steps, settings=Settings(jitter=0, blur=0.0)))[-1]
    torch.testing.assert_close(last.image, x.detach(), atol=1e-6, rtol=0)


def test_two_chunks_are_one_search(bundled):
    unit, settings = Unit("conv2", 3, "mean"), Settings(jitter=2, blur=0.7, decay=0.01, seed=4)
    whole = list(maximise.maximise(bundled, unit, steps=80, every=40, settings=settings))[-1]
    ascent = maximise.Ascent(unit, settings)
    list(ascent.run(bundled, 50, 25))
    last = list(ascent.run(bundled, 30, 25))[-1]
    assert last.step == whole.step == 80
    torch.testing.assert_close(last.image, whole.image, atol=1e-6, rtol=0)
    assert [s for s, _ in ascent.history] == [0, 25, 50, 75, 80]


# -- the regularisers --------------------------------------------------------------------------------
def test_blur_makes_the_image_smoother(bundled):
    unit = Unit("class", 3)
    tv = {}
    for blur in (0.0, 1.0):
        last = list(maximise.maximise(bundled, unit, steps=200, every=200, settings=Settings(blur=blur)))[-1]
        tv[blur] = total_variation(last.image)
    assert tv[1.0] < 0.7 * tv[0.0], tv


def test_decay_darkens_the_image(bundled):
    unit = Unit("class", 3)
    ink = {}
    for decay in (0.0, 0.03):
        last = list(maximise.maximise(bundled, unit, steps=200, every=200, settings=Settings(decay=decay)))[-1]
        ink[decay] = float(last.image.sum())
    assert ink[0.03] < 0.8 * ink[0.0], ink


def test_jitter_moves_the_image_before_each_forward_pass(bundled):
    """The network sees shifted copies: with jitter, the inputs the hook records are rolled versions of
    the image being optimised (checked on the first step, before the image changes)."""
    seen = []
    handle = bundled.conv1.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach().clone()))
    try:
        ascent = maximise.Ascent(Unit("class", 3), Settings(jitter=3, blur=0.0, seed=1))
        list(ascent.run(bundled, 1, 1))
    finally:
        handle.remove()
    start = maximise.start_image(1)
    first_step_input = seen[1]  # seen[0] is the report at step 0, on the unshifted image
    shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
              if torch.equal(torch.roll(start, (dy, dx), dims=(2, 3)), first_step_input)]
    assert len(shifts) == 1 and shifts[0] != (0, 0)  # seed 1 draws a non-zero shift


def test_gaussian_blur_matches_scipy():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (28, 28))
    for sigma in (0.5, 1.0, 2.0):
        ours = maximise.gaussian_blur(torch.tensor(image)[None, None], sigma)[0, 0].numpy()
        expected = ndimage.gaussian_filter(image, sigma, mode="constant", truncate=3.0)
        np.testing.assert_allclose(ours, expected, atol=1e-12)


# -- the model is left as it was ----------------------------------------------------------------------
def test_weights_mode_and_hooks_are_as_before_even_when_stopped_early(bundled):
    model = copy.deepcopy(bundled).train()
    before = copy.deepcopy(model.state_dict())
    reports = maximise.maximise(model, Unit("conv1", 2, "centre"), steps=300, every=10)
    next(reports), next(reports)
    assert not model.training and not no_hooks(model)  # during the search: eval mode, one hook
    reports.close()  # a stop between two reports
    assert model.training and no_hooks(model)
    list(maximise.maximise(model, Unit("class", 1), steps=30, every=10))
    assert model.training and no_hooks(model)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert all(p.grad is None for p in model.parameters())


def test_a_unit_that_does_not_exist_is_refused_and_leaves_no_hook():
    model = SimpleCNN().eval()
    with pytest.raises(ValueError, match="32 units"):
        list(maximise.maximise(model, Unit("conv1", 32), steps=1))
    with pytest.raises(ValueError):
        Unit("conv3", 0)
    assert no_hooks(model)


# -- top images ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: f"{u.layer}-{u.index}-{u.reduce}")
def test_top_images_match_brute_force_on_500_test_images(bundled, mnist, unit):
    images = mnist.test_images[:500]
    top = maximise.top_images(bundled, images, unit, k=9, batch_size=128)
    values = by_hand(bundled, to_float(images), unit).double().numpy()
    expected = sorted(range(500), key=lambda i: (-values[i], i))[:9]
    assert list(top.indices) == expected
    np.testing.assert_allclose(top.values, values[expected], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(top.images, to_float(images[expected])[:, 0].numpy())
    assert no_hooks(bundled)


def test_the_searched_three_beats_the_nine_most_three_like_test_images(bundled, mnist):
    """On the bundled model, 200 steps with the default regularisers give the logit of 3 a larger value
    than any test image (measured: about 35 against 26 for the best test image)."""
    top = maximise.top_images(bundled, mnist, Unit("class", 3))
    assert len(top.indices) == 9 and list(top.values) == sorted(top.values, reverse=True)
    assert all(int(mnist.test_labels[i]) == 3 for i in top.indices)
    last = list(maximise.maximise(bundled, Unit("class", 3), steps=200, every=200))[-1]
    assert last.objective > top.values[0]
    average = to_float(mnist.test_images).mean(dim=0, keepdim=True)
    assert last.objective > float(by_hand(bundled, average, Unit("class", 3))[0])


# -- the figures ---------------------------------------------------------------------------------------
def test_figures_draw_the_numbers_they_are_given():
    from simplecnn import explain_plots

    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (9, 28, 28))
    grid = explain_plots.top_image_grid(images, [f"#{i}" for i in range(9)])
    assert len(grid.data) == 9
    for i, cell in enumerate(grid.data):
        np.testing.assert_allclose(cell.z, images[i])
        assert (cell.zmin, cell.zmax) == (0.0, 1.0)
    assert [a.text for a in grid.layout.annotations] == [f"#{i}" for i in range(9)]
    faint = explain_plots.unit_image(images[0] * 0.1, "Step 5: 1.00")
    assert (faint.data[0].zmin, faint.data[0].zmax) == (0.0, 1.0)  # a faint result is drawn faint
    curve = explain_plots.objective_curve([0, 10, 20], [1.0, 3.0, 4.0], {"best test image": 3.5})
    np.testing.assert_allclose(curve.data[0].y, [1.0, 3.0, 4.0])
    assert [(s.y0, s.y1) for s in curve.layout.shapes] == [(3.5, 3.5)]
