"""Claims made in the prose of lessons 1-7, checked against closed forms, torch and the bundled trained model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simplecnn.checkpoints import load_checkpoint
from simplecnn.evaluation import predict_logits
from simplecnn.lessons import activations_losses as al


@pytest.fixture(scope="module")
def trained(bundled_path):
    model, _ = load_checkpoint(bundled_path)
    return model.eval()


# -- lesson 6: the logit gradient, not dL/dp ------------------------------------------------------------
def _mse_logit_gradient_by_hand(p: float, classes: int) -> float:
    """(2/C) sum_j (q_j - t_j) q_j (delta_jy - p): the chain rule through softmax, written out."""
    q = np.full(classes, (1 - p) / (classes - 1))
    q[0] = p
    t = np.eye(classes)[0]
    delta = t
    return float(2 / classes * np.sum((q - t) * q * (delta - p)))


def test_cross_entropy_logit_gradient_is_p_minus_one_and_bounded():
    p = np.array([1e-4, 0.001, 0.01, 0.3, 0.9, 0.999])
    c = al.logit_gradient_curves(p, num_classes=10)
    assert c["ce"] == pytest.approx(-np.log(p))
    assert c["ce_grad"] == pytest.approx(p - 1)  # closed form; the old page plotted -1/p here
    assert np.all(np.abs(c["ce_grad"]) <= 1)


def test_mse_logit_gradient_vanishes_for_a_confident_mistake():
    p = np.array([1e-4, 0.001, 0.01, 0.3, 0.9])
    c = al.logit_gradient_curves(p, num_classes=10)
    assert c["mse_grad"] == pytest.approx([_mse_logit_gradient_by_hand(v, 10) for v in p], rel=1e-9)
    at_001 = al.logit_gradient_curves([0.001], num_classes=10)
    assert at_001["ce_grad"][0] == pytest.approx(-0.999)
    assert at_001["mse_grad"][0] == pytest.approx(-0.0002, abs=5e-5)  # the "about -0.0002"
    assert abs(c["mse_grad"][0]) < abs(c["mse_grad"][1]) < abs(c["mse_grad"][2])  # weaker the more wrong


def test_logit_gradient_agrees_with_torch_cross_entropy():
    p = 0.02
    q = torch.full((10,), (1 - p) / 9, dtype=torch.float64)
    q[0] = p
    z = torch.log(q).requires_grad_(True)
    F.cross_entropy(z[None], torch.tensor([0])).backward()
    assert al.logit_gradient_curves([p])["ce_grad"][0] == pytest.approx(float(z.grad[0]))


# -- lesson 6: hinge table, cross-entropy in two halves -------------------------------------------------
def test_hinge_table_has_no_missing_cells_and_sums_to_torchs_loss():
    scores, y = np.array([1.5, 0.2, -1.0, 0.9]), 1
    rows = al.hinge_terms(scores, y)
    cells = [v for row in rows for v in row.values()]
    assert all(isinstance(v, str) and v not in ("None", "nan", "") for v in cells)
    assert "j = y" in rows[y]["hinge term max(0, ·)"]
    total = sum(float(r["hinge term max(0, ·)"]) for j, r in enumerate(rows) if j != y)
    torch_loss = float(F.multi_margin_loss(torch.tensor(scores[None]), torch.tensor([y])))
    assert total == pytest.approx(len(scores) * torch_loss, abs=1e-4)


@pytest.mark.parametrize("label", [0, 2, 3])
def test_log_softmax_then_nll_equals_torch(label):
    z = np.array([2.0, -1.0, 0.5, 7.0])
    halves = al.log_softmax_then_nll(z, label)
    assert halves["log_softmax"] == pytest.approx(F.log_softmax(torch.tensor(z), 0).numpy(), abs=1e-12)
    nll = F.nll_loss(F.log_softmax(torch.tensor(z[None]), 1), torch.tensor([label]))
    assert halves["nll"] == pytest.approx(float(nll), abs=1e-12)
    assert halves["nll"] == pytest.approx(float(F.cross_entropy(torch.tensor(z[None]), torch.tensor([label]))))


# -- lesson 6 on the trained model: the listed images and what the text says about them -------------------
@pytest.mark.parametrize("count", [500, 2000])
def test_listed_images_are_the_largest_loss_ones_and_described_truly(trained, mnist, count):
    logits = predict_logits(trained, mnist.test_images[:count])
    labels = mnist.test_labels[:count]
    worst = al.largest_losses(logits, labels, 8)
    reference = F.cross_entropy(logits.double(), labels, reduction="none")  # torch, not our cross_entropy
    top = torch.topk(reference, 8)
    assert worst["loss"] == pytest.approx(top.values.numpy(), rel=1e-9)
    assert set(worst["index"].tolist()) == set(top.indices.tolist())
    predicted = logits[top.indices].argmax(1)
    wrong = int((predicted != labels[top.indices]).sum())
    text = al.describe_largest_losses(worst)
    if wrong:
        assert f"{wrong} of these 8 are mistakes" in text
    else:
        assert "mistake" not in text  # the old page called correct answers "confident mistakes"
    if wrong < 8:
        assert f"{8 - wrong} " in text and "classified correctly" in text
    assert worst["mistakes_in_set"] == int((logits.argmax(1) != labels).sum())


# -- lesson 7: the Bowl note, Adagrad, Momentum's own beta, Adam's bias correction ------------------------
from simplecnn.lessons import optim_paths as op  # noqa: E402

PAGE_DEFAULTS = dict(lr=0.1, beta1=0.9, beta2=0.99, steps=150, noise=1.0, seed=0)  # the page's first view


def _bowl_adagrad_by_hand(start, lr, steps):
    """Adagrad on x^2 + y^2 in numpy: G accumulates every squared gradient, so lr / sqrt(G) only shrinks."""
    w, G = np.array(start, dtype=np.float64), np.zeros(2)
    for _ in range(steps):
        g = 2 * w
        G += g ** 2
        w = w - lr * g / (np.sqrt(G) + 1e-10)
    return w


def test_bowl_note_does_not_claim_every_method_arrives():
    s = op.SURFACES["Bowl"]
    assert "every method" not in s.note
    w = _bowl_adagrad_by_hand(s.start, PAGE_DEFAULTS["lr"], PAGE_DEFAULTS["steps"])
    by_hand = float(w @ w)
    assert by_hand > 1.0  # measured: 2.82, far from the minimum 0
    paths = op.all_paths(s, s.start, **PAGE_DEFAULTS)
    short = op.short_of_minimum(s, paths)
    assert short["Adagrad"] == pytest.approx(by_hand, rel=1e-9)
    assert "SGD" in short and "Batch GD" not in short  # the noisy SGD jitters around 0 (measured 0.049)


@pytest.mark.parametrize("lr, converges", [(0.1, True), (0.95, True), (1.0, False), (1.2, False)])
def test_bowl_note_gradient_descent_needs_eta_below_one(lr, converges):
    s = op.SURFACES["Bowl"]
    path = op.optimizer_path("Batch GD", s, s.start, lr, steps=200)
    assert path[1] == pytest.approx(np.array(s.start) * (1 - 2 * lr))  # the note's factor 1 - 2 eta
    reached = np.all(np.isfinite(path[-1])) and float(path[-1] @ path[-1]) < 1e-6
    assert reached == converges
    assert "η < 1" in s.note


def test_momentum_has_its_own_beta_and_steps_grow_to_lr_over_one_minus_beta():
    slope = op.Surface("slope", lambda x, y: 3.0 * x + 0.0 * y, (0.0, 0.0), (-1e9, 1e9), (-1, 1), 0.1, False,
                       ((0.0, 0.0),), "a constant gradient (3, 0)")
    for beta in (0.5, 0.9):
        path = op.optimizer_path("Momentum", slope, (0.0, 0.0), 0.01, beta1=0.0, steps=300, momentum=beta)
        last_step = path[-2, 0] - path[-1, 0]
        assert last_step == pytest.approx(0.01 * 3.0 / (1 - beta), rel=1e-6)  # eta g / (1 - beta)
    s = op.SURFACES["Narrow ravine"]
    a = op.all_paths(s, s.start, 0.05, 0.9, 0.99, 20, 0.0, momentum=0.3)
    b = op.all_paths(s, s.start, 0.05, 0.9, 0.99, 20, 0.0, momentum=0.8)
    assert np.array_equal(a["Adam"], b["Adam"]) and not np.allclose(a["Momentum"], b["Momentum"])


def test_leaves_window_finds_the_first_step_outside():
    s = op.SURFACES["Bowl"]
    path = op.optimizer_path("Momentum", s, s.start, 1.5, steps=60, momentum=0.9)
    outside = (np.abs(path[:, 0]) > 4) | (np.abs(path[:, 1]) > 4) | ~np.all(np.isfinite(path), axis=1)
    assert outside.any()  # x1 = x0 (1 - 2 eta) = -2 x0: out of the window at once
    assert op.leaves_window(s, path) == int(np.argmax(outside))
    assert op.leaves_window(s, op.optimizer_path("Batch GD", s, s.start, 0.1, steps=60)) is None


@pytest.mark.parametrize("lr", [0.1, 0.3, 0.7, 0.9, 1.0, 1.3])  # 0.5 lands on 0 in one step
def test_gd_behaviour_on_the_bowl_follows_the_factor_one_minus_two_eta(lr):
    s = op.SURFACES["Bowl"]
    factor = 1 - 2 * lr  # closed form: x_{t+1} = x_t - lr * 2 x_t
    expected = (op.GD_BEHAVIOURS[3] if abs(factor) > 1 else op.GD_BEHAVIOURS[2] if abs(factor) == 1
                else op.GD_BEHAVIOURS[1] if factor < 0 else op.GD_BEHAVIOURS[0])
    assert op.gd_behaviour(op.optimizer_path("Batch GD", s, s.start, lr, steps=40)) == expected


# -- lesson 4: a one-pixel shift changes the max-pooled map less than the input -------------------------
from simplecnn.lessons import convolution as cv  # noqa: E402
from simplecnn.lessons import pooling_shift as ps  # noqa: E402


def _share_by_torch(x: torch.Tensor, dr: int, dc: int) -> tuple[float, float]:
    """Changed shares before/after 2x2 max pooling, with torch.roll (MNIST's border rows are empty, so it
    equals a zero-filled shift there) and F.max_pool2d: independent of the lesson module."""
    moved = torch.roll(x, (dr, dc), (-2, -1))
    pooled, pooled_moved = F.max_pool2d(x[None], 2), F.max_pool2d(moved[None], 2)
    return (float((moved - x).abs().sum() / x.abs().sum()),
            float((pooled_moved - pooled).abs().sum() / pooled.abs().sum()))


@pytest.mark.parametrize("index", [0, 1, 7, 42])
def test_shift_shares_on_real_digits_match_torch(mnist, index):
    x = mnist.test_images[index].double() / 255.0  # (28, 28)
    assert float(x[0].abs().sum() + x[-1].abs().sum() + x[:, 0].abs().sum() + x[:, -1].abs().sum()) == 0
    for direction, (dr, dc) in ps.SHIFTS.items():
        c = ps.shift_comparison(x.numpy(), direction)
        before, after = _share_by_torch(x, dr, dc)
        assert (c["input_change"], c["pooled_change"]) == pytest.approx((before, after), rel=1e-12)


def test_shift_changes_the_pooled_map_less_on_most_digits(mnist):
    answers = [ps.shift_comparison(mnist.test_images[i].double().numpy() / 255.0, d)["answer"]
               for i in range(100) for d in ps.SHIFTS]
    assert answers.count(ps.SHIFT_ANSWERS[0]) / len(answers) > 0.95  # measured: 1182 of 1200 on 300 digits


def test_shift_changes_the_trained_models_max1_less_than_its_relu1(trained, mnist):
    """The claim on what SimpleCNN really pools: its relu1 maps, shifted digit in, against max1."""
    for index in range(10):
        image = mnist.test_images[index]
        maps = cv.live_feature_maps(trained, image)
        moved = cv.live_feature_maps(trained, torch.roll(image, 1, -1))
        relu = float(np.abs(moved["relu1"] - maps["relu1"]).sum() / np.abs(maps["relu1"]).sum())
        pooled = float(np.abs(moved["max1"] - maps["max1"]).sum() / np.abs(maps["max1"]).sum())
        assert pooled < relu
