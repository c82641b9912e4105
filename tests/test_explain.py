"""simplecnn.explain: every number checked against an independent computation (torch autograd, hooks,
hand-made images), and the claims the Explain page makes checked on the bundled model."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from simplecnn.checkpoints import load_checkpoint
from simplecnn.data import to_float
from simplecnn.explain import attacks, attribution, invariance
from simplecnn.explain.invariance import Pose
from simplecnn.inspection import saliency as draw_page_saliency
from simplecnn.model import SimpleCNN

# Captum says it switches requires_grad on for the images it attacks: intended (see explain.attacks).
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor .* did not already require gradients")


@pytest.fixture(scope="module")
def bundled(bundled_path):
    return load_checkpoint(bundled_path)[0].eval()


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    return SimpleCNN().eval()


@pytest.fixture(scope="module")
def digits(mnist):
    """The first 100 test digits as floats (100, 1, 28, 28) and their labels."""
    return to_float(mnist.test_images[:100]), mnist.test_labels[:100]


def logits_of(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x).double()


# -- attacks ---------------------------------------------------------------------------------------
def hand_fgsm(model, x, labels, eps) -> torch.Tensor:
    """clamp(x + ε·sign(∇x CE), 0, 1) with plain autograd (the loss in float64, as the module documents)."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).double(), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


@pytest.mark.parametrize("which", ["bundled", "untrained"])
@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_fgsm_is_x_plus_eps_sign_gradient(request, which, eps, digits):
    model = request.getfixturevalue(which)
    x, y = digits[0][:16], digits[1][:16]
    ours = attacks.fgsm_batch(model, x, y, eps)
    expected = hand_fgsm(model, x, y, eps)
    assert torch.allclose(ours, expected, atol=1e-6)
    # In pixel space: no pixel moves by more than ε, and unclamped pixels move by exactly ε.
    change = (ours - x).abs()
    assert float(change.max()) == pytest.approx(eps, abs=1e-6)
    # A digit the model reads with p ≈ 1 still moves (float64 loss, no Captum gradient threshold).
    assert int((change[0] > 0).sum()) > 300


def test_fgsm_single_image_result_reports_true_sizes(bundled, digits):
    x = digits[0][:1]
    result = attacks.attack(bundled, x, label=7, epsilon=0.1, method="FGSM")
    delta = (result.perturbed - x)[0, 0].double()
    assert result.linf == pytest.approx(float(delta.abs().max()), abs=1e-9)
    assert result.l2 == pytest.approx(float(torch.linalg.vector_norm(delta)), rel=1e-9)
    probs = F.softmax(logits_of(bundled, torch.cat([x, result.perturbed])), dim=1).numpy()
    np.testing.assert_allclose(result.probs_before, probs[0], atol=1e-9)
    np.testing.assert_allclose(result.probs_after, probs[1], atol=1e-9)


@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_pgd_stays_in_the_eps_ball_and_in_pixel_range(bundled, digits, eps):
    x, y = digits[0][:32], digits[1][:32]
    adv = attacks.pgd_batch(bundled, x, y, eps, steps=10)
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert not torch.equal(adv, x)


def test_pgd_is_at_least_as_strong_as_fgsm_and_accuracy_is_counted(bundled, digits):
    x, y = digits[0][:50], digits[1][:50]
    eps = [0.0, 0.1]
    fgsm = attacks.accuracy_under_attack(bundled, x, y, eps, "FGSM")
    pgd = attacks.accuracy_under_attack(bundled, x, y, eps, "PGD", steps=10)
    clean = float((logits_of(bundled, x).argmax(1) == y).double().mean())
    assert fgsm[0] == pgd[0] == pytest.approx(clean)
    assert pgd[1] <= fgsm[1] < clean
    direct = float((logits_of(bundled, attacks.pgd_batch(bundled, x, y, 0.1, steps=10)).argmax(1) == y)
                   .double().mean())
    assert pgd[1] == pytest.approx(direct)


@pytest.mark.parametrize("target", [3, 1])
def test_targeted_search_flips_the_bundled_model_and_reports_true_norms(bundled, digits, target):
    x = digits[0][:1]  # a 7
    search = attacks.smallest_targeted_change(bundled, x, target, max_epsilon=0.5, steps=20)
    found = search.found
    assert found is not None and found.targeted and found.label == target
    assert int(logits_of(bundled, found.perturbed).argmax()) == target  # really flipped
    delta = (found.perturbed - x)[0, 0].double()
    assert found.linf == pytest.approx(float(delta.abs().max()), abs=1e-9)
    assert found.l2 == pytest.approx(float(torch.linalg.vector_norm(delta)), rel=1e-9)
    assert found.linf <= found.epsilon + 1e-6
    assert 0.0 <= float(found.perturbed.min()) and float(found.perturbed.max()) <= 1.0
    # Smallest to the search's resolution: the largest failed ε is within max_ε / 2^8 below it, and
    # PGD there really does not reach the target.
    below = search.largest_failure
    assert 0 < found.epsilon - below <= 0.5 / 2 ** attacks.SEARCH_ITERATIONS + 1e-12
    again = attacks.pgd_batch(bundled, x, target, below, steps=20, targeted=True)
    assert int(logits_of(bundled, again).argmax()) != target


def test_targeted_search_for_the_class_already_read_needs_no_change(bundled, digits):
    search = attacks.smallest_targeted_change(bundled, digits[0][:1], 7)
    assert search.found.epsilon == 0.0 and search.found.linf == 0.0


def test_epsilon_at_accuracy_interpolates():
    assert attacks.epsilon_at_accuracy([0, 0.1, 0.2], [1.0, 0.8, 0.4]) == pytest.approx(0.175)
    assert attacks.epsilon_at_accuracy([0, 0.1], [1.0, 0.9]) is None
    assert attacks.epsilon_at_accuracy([0.05, 0.1], [0.3, 0.1]) == 0.05


# -- attributions ----------------------------------------------------------------------------------
def test_saliency_is_the_draw_pages_saliency(bundled, digits):
    for i in range(3):
        x = digits[0][i:i + 1]
        np.testing.assert_allclose(attribution.saliency_map(bundled, x, 4), draw_page_saliency(bundled, x, 4),
                                   rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("which", ["bundled", "untrained"])
def test_integrated_gradients_add_up_to_the_logit_difference(request, which, digits):
    model = request.getfixturevalue(which)
    for i in range(6):
        x = digits[0][i:i + 1]
        for target in (int(digits[1][i]), 3):
            attr = attribution.integrated_gradients(model, x, target, steps=128)
            logits = logits_of(model, torch.cat([x, torch.zeros_like(x)]))
            difference = float(logits[0, target] - logits[1, target])
            # Sundararajan et al. suggest checking the sum is within 5 % of the difference; ReLUs and
            # max-pools make the path integral piecewise, so a finite quadrature is never exact.
            assert abs(attr.sum() - difference) <= 0.05 * abs(difference) + 0.01, (i, target)


def hand_grad_cam(model, x, target, layer) -> np.ndarray:
    """Grad-CAM from a forward hook on `layer`: relu(Σ_k mean(∂logit/∂A_k) · A_k)."""
    model = copy.deepcopy(model).eval()
    kept = {}
    handle = getattr(model, layer).register_forward_hook(lambda _m, _i, out: kept.__setitem__("A", out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    activation = kept["A"]  # (1, C, 8, 8)
    (grad,) = torch.autograd.grad(logits[0, target], activation)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activation).sum(dim=1))[0].detach().double().numpy()


@pytest.mark.parametrize("layer", ["conv2", "relu2"])
def test_grad_cam_matches_a_hand_computation_from_hooks(bundled, digits, layer):
    for i in range(4):
        x = digits[0][i:i + 1]
        target = int(digits[1][i])
        ours = attribution.grad_cam(bundled, x, target, layer=layer)
        assert ours.shape == (8, 8)
        np.testing.assert_allclose(ours, hand_grad_cam(bundled, x, target, layer), rtol=1e-5, atol=1e-6)
    assert attribution.CAM_LAYER == "relu2"


def test_cam_cells_land_on_their_receptive_field_centres():
    cam = np.zeros((8, 8))
    cam[2, 5] = 1.0  # centre of its receptive field: row 2·2 + 6.5 = 10.5, column 2·5 + 6.5 = 16.5
    up = attribution.cam_to_input(cam)
    assert up.shape == (28, 28)
    np.testing.assert_allclose(up[10:12, 16:18], 0.75 * 0.75)
    assert up.max() == pytest.approx(0.5625) and up[9, 16] == pytest.approx(0.25 * 0.75)
    np.testing.assert_allclose(attribution.cam_to_input(np.full((8, 8), 2.0)), 2.0)


def test_occlusion_is_the_logit_drop_when_a_window_is_blacked_out(bundled, digits):
    x = digits[0][:1]
    target = 7
    ours = attribution.occlusion(bundled, x, target, window=4, stride=4)  # windows tile the image
    full = float(logits_of(bundled, x)[0, target])
    for top in range(0, 28, 4):
        for left in range(0, 28, 4):
            hidden = x.clone()
            hidden[..., top:top + 4, left:left + 4] = 0.0
            drop = full - float(logits_of(bundled, hidden)[0, target])
            np.testing.assert_allclose(ours[top:top + 4, left:left + 4], drop, atol=1e-4)


def test_rank_correlation_is_spearman_of_absolute_values():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(28, 28)), rng.normal(size=(28, 28))
    b = b + 0.5 * a
    expected = pd.Series(np.abs(a).ravel()).corr(pd.Series(np.abs(b).ravel()), method="spearman")
    assert attribution.rank_correlation(a, b) == pytest.approx(expected, abs=1e-12)
    mask = np.abs(a) > 1
    expected_masked = pd.Series(np.abs(a[mask])).corr(pd.Series(np.abs(b[mask])), method="spearman")
    assert attribution.rank_correlation(a, b, mask) == pytest.approx(expected_masked, abs=1e-12)
    assert np.isnan(attribution.rank_correlation(a, np.zeros_like(a)))


def test_randomisation_cascades_from_the_top_and_leaves_the_model_alone(bundled):
    before = copy.deepcopy(bundled.state_dict())
    top_two = attribution.randomised(bundled, ["fc2", "fc1"], seed=1)
    for name, tensor in bundled.state_dict().items():
        assert torch.equal(tensor, before[name])  # the model itself is untouched
        changed = not torch.equal(top_two.state_dict()[name], tensor)
        assert changed == (name.split(".")[0] in ("fc2", "fc1") and tensor.is_floating_point()), name


def test_sanity_check_on_the_bundled_model(bundled, digits):
    """Adebayo et al.'s finding holds here: the gradient changes when the weights go, while Integrated
    Gradients and Occlusion keep the digit's shape (they are zero off the ink whatever the weights)."""
    x = digits[0][:1]
    check = attribution.cascading_randomisation(bundled, x, ig_steps=32)
    assert check.stages == ["trained", "fc2", "fc1", "conv2", "conv1"] and check.target == 7
    for method in attribution.METHODS:
        assert check.correlations[method][0] == pytest.approx(1.0)
        np.testing.assert_allclose(check.maps[0][method], attribution.attribution_bench(
            bundled, x, 7, ig_steps=32).maps[method], rtol=1e-6, atol=1e-9)
    assert check.correlations["Saliency"][-1] < 0.8
    assert check.ink_correlations["Saliency"][-1] < 0.5
    assert check.correlations["Integrated Gradients"][-1] > 0.9  # the input's shape, not the model
    assert check.ink_correlations["Integrated Gradients"][-1] < check.correlations["Integrated Gradients"][-1]


def test_explanations_leave_the_model_as_they_found_it(digits):
    torch.manual_seed(1)
    model = SimpleCNN().train()
    before = copy.deepcopy(model.state_dict())
    x = digits[0][:1]
    attribution.attribution_bench(model, x, 3, ig_steps=8)
    attacks.attack(model, x, 3, 0.1, "PGD", steps=3)
    invariance.probe(model, x, "angle")
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(t, before[k]) for k, t in model.state_dict().items())


# -- invariance ------------------------------------------------------------------------------------
def test_transforms_are_exact_where_they_can_be(digits):
    x = digits[0][:1]
    np.testing.assert_allclose(invariance.transform(x, Pose()), x, atol=1e-5)
    shifted = torch.zeros_like(x)
    shifted[..., :-2, 3:] = x[..., 2:, :-3]  # 3 px right, 2 px up, black coming in
    np.testing.assert_allclose(invariance.transform(x, Pose(shift_x=3, shift_y=-2)), shifted, atol=1e-5)
    # anticlockwise as seen = numpy's/torch's rot90 with k=1
    np.testing.assert_allclose(invariance.transform(x, Pose(angle=90)), torch.rot90(x, 1, (2, 3)), atol=1e-5)
    thick = ndimage.grey_dilation(x[0, 0].numpy(), size=(3, 3))
    np.testing.assert_allclose(invariance.transform(x, Pose(thickness=1))[0, 0], thick, atol=1e-5)
    half = 0.5 * (x[0, 0].numpy() + thick)
    np.testing.assert_allclose(invariance.transform(x, Pose(thickness=0.5))[0, 0], half, atol=1e-5)
    thin = ndimage.grey_erosion(x[0, 0].numpy(), size=(3, 3))
    np.testing.assert_allclose(invariance.transform(x, Pose(thickness=-1))[0, 0], thin, atol=1e-5)


def test_the_batched_curve_equals_one_forward_pass_per_image(bundled, digits):
    x = digits[0][3:4]
    base = Pose(shift_x=1, angle=10, scale=1.1, thickness=0.25)
    for name, spec in invariance.PROBES.items():
        curve = invariance.probe(bundled, x, name, base=base)
        assert curve.probs.shape == (len(spec.values), 10)
        for value, row in zip(spec.values, curve.probs):
            pose = Pose(**{**base.__dict__, spec.field: value})
            single = F.softmax(logits_of(bundled, invariance.transform(x, pose)), dim=1)[0].numpy()
            np.testing.assert_allclose(row, single, atol=1e-5, err_msg=f"{name}={value}")


def test_bundled_model_reads_centred_digits_and_loses_them_far_away(bundled, digits):
    """The bundled model (trained with ±2 px shifts) reads centred test digits, still does within the
    augmentation's ±2 px, and mostly stops at 10 px in any direction."""
    x, y = digits
    reads = {}
    for name in ("shift_x", "shift_y"):
        values = np.asarray(invariance.PROBES[name].values)
        hits = np.stack([invariance.probe(bundled, x[i:i + 1], name, cls=int(y[i])).predicted == int(y[i])
                         for i in range(len(y))])  # (100, 21)
        reads[name] = dict(zip(values, hits.mean(axis=0)))
    for name, accuracy in reads.items():
        assert accuracy[0.0] >= 0.97, name
        assert min(accuracy[v] for v in (-2.0, -1.0, 1.0, 2.0)) >= 0.95, name
        assert accuracy[-10.0] <= 0.5 and accuracy[10.0] <= 0.5, (name, accuracy)
    curve = invariance.probe(bundled, x[:1], "shift_y")
    lo, hi = curve.readable_range()
    assert curve.cls == 7 and curve.confidence[curve.values == 0.0][0] > 0.99
    assert lo <= -2 and hi >= 2 and curve.confidence[-1] < 0.1
