"""Attribution maps: four answers to "which pixels made the model say this class?", and a test of them.

All four explain the *logit* (pre-softmax score) of one class for one image, with Captum:

* **Saliency** (`captum.attr.Saliency`): |∂ logit / ∂ pixel|, the same map as the Draw page's
  (`simplecnn.inspection.saliency`). Local: how sensitive the score is to a tiny change of each pixel.
* **Integrated Gradients** (`IntegratedGradients`, Sundararajan et al., 2017): the gradient averaged
  along the straight path from a black image to the input, times (input − black). Its attributions
  add up to logit(input) − logit(black) ("completeness"); `completeness_gap` says how closely.
* **Grad-CAM on conv2** (`LayerGradCam`, Selvaraju et al., 2017): conv2's 64 feature maps (8×8), each
  weighted by the mean gradient of the logit over it, summed, negatives dropped. Coarse: where in the
  image the second convolution found evidence. As in the paper, the maps are the rectified output of
  the last convolution block (`relu2`: conv2 after its batch norm and ReLU); conv2's raw output carries
  an offset that batch norm removes, which would shift the weighted sum. Drawn at the input's
  resolution by `cam_to_input`.
* **Occlusion** (`Occlusion`, Zeiler & Fergus, 2014): black out a square window at every position and
  record how much the logit drops; each pixel gets the mean drop of the windows covering it. On a
  black background it can only see where the *ink* matters.

`cascading_randomisation` is the sanity check of Adebayo et al. (2018), "Sanity checks for saliency
maps": re-initialise the weights layer by layer from the top (fc2, then also fc1, conv2, conv1) and
recompute every map. A method that explains the model must change when the model is destroyed; one
whose map barely changes (high rank correlation with the trained model's map) is showing the input.
On a black background Integrated Gradients (× (input − black)) and Occlusion (black over black changes
nothing) are zero off the ink whatever the weights, so their whole-image correlation stays high by
construction; the correlation over the ink pixels alone shows what the weights still decide.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerGradCam, Occlusion, Saliency
from scipy import ndimage, stats
from torch import nn

from .common import Stopwatch, evaluating, one_image, probabilities

METHODS = ("Saliency", "Integrated Gradients", "Grad-CAM (conv2)", "Occlusion")
SIGNED = {"Saliency": False, "Integrated Gradients": True, "Grad-CAM (conv2)": False, "Occlusion": True}
WHAT_IT_MEASURES = {
    "Saliency": "How much the class score would move if this pixel alone changed a tiny bit "
                "(|gradient|): sensitivity, right here.",
    "Integrated Gradients": "Each pixel's share of the score difference between a black image and this one "
                            "(red raises the score, blue lowers it); the shares add up to that difference.",
    "Grad-CAM (conv2)": "Where conv2's feature maps hold evidence for the class: its 64 maps of 8×8, weighted "
                        "by their mean gradient and summed, so it is coarse.",
    "Occlusion": "How much the score drops when a small black square hides this spot (red: hiding it hurts "
                 "the class, blue: hiding it helps).",
}
IG_STEPS = 128  # Gauss-Legendre points. Bundled model, 20 test digits x 2 classes: completeness gap median
# 0.2 %, at most 3.7 % of the logit difference (at Captum's default of 50: median 0.5 %, at most 6 %)
MAX_IG_STEPS = 256  # the page's bound (~ a quarter of a second on 2 CPU cores)
OCCLUSION_WINDOW = 4  # pixels; with stride window // 2: 13 x 13 = 169 occluded copies, one batched pass
CAM_LAYER = "relu2"  # conv2's block after batch norm and ReLU, still 8x8 (see the module notes)
RANDOMISE_ORDER = ("fc2", "fc1", "conv2", "conv1")  # Adebayo et al.: from the top of the network down
# conv2's output cell (i, j) sees input pixels 2i .. 2i+13; the centre of that receptive field:
CAM_ORIGIN, CAM_STRIDE = 6.5, 2.0  # input coordinate = CAM_ORIGIN + CAM_STRIDE * cell index


def _class(model: nn.Module, x: torch.Tensor, target: int | None) -> int:
    return int(probabilities(model, x)[0].argmax()) if target is None else int(target)


def saliency_map(model: nn.Module, x, target: int | None = None) -> np.ndarray:
    """|∂ logit[target] / ∂ x| for one image, (28, 28) float64."""
    x = one_image(x, model)
    cls = _class(model, x, target)
    with evaluating(model):
        attr = Saliency(model).attribute(x.clone().requires_grad_(True), target=cls, abs=True)
    return attr[0, 0].detach().double().cpu().numpy()


def integrated_gradients(model: nn.Module, x, target: int | None = None, steps: int = IG_STEPS,
                         baseline=None) -> np.ndarray:
    """Integrated Gradients from `baseline` (black by default) to the image, (28, 28) float64."""
    x = one_image(x, model)
    cls = _class(model, x, target)
    steps = int(steps)
    if not 2 <= steps <= 10_000:
        raise ValueError(f"Integrated Gradients needs 2 to 10,000 steps; got {steps}.")
    base = torch.zeros_like(x) if baseline is None else one_image(baseline, model)
    with evaluating(model):
        attr = IntegratedGradients(model).attribute(x, baselines=base, target=cls, n_steps=steps,
                                                    internal_batch_size=min(steps, 128))
    return attr[0, 0].detach().double().cpu().numpy()


@torch.no_grad()
def logit(model: nn.Module, x, target: int) -> float:
    """The raw score of class `target` for one image, in eval mode."""
    with evaluating(model):
        return float(model(one_image(x, model))[0, int(target)])


def completeness_gap(model: nn.Module, x, target: int, attributions: np.ndarray, baseline=None) -> tuple[float, float]:
    """(sum of attributions, logit(x) − logit(baseline)): equal for exact Integrated Gradients."""
    x = one_image(x, model)
    base = torch.zeros_like(x) if baseline is None else one_image(baseline, model)
    return float(attributions.sum()), logit(model, x, target) - logit(model, base, target)


def grad_cam(model: nn.Module, x, target: int | None = None, layer: str = CAM_LAYER) -> np.ndarray:
    """Grad-CAM on `layer`'s output at its own resolution ((8, 8) for conv2's block), ReLU applied, float64."""
    x = one_image(x, model)
    cls = _class(model, x, target)
    with evaluating(model):
        cam = LayerGradCam(model, getattr(model, layer)).attribute(x, target=cls, relu_attributions=True)
    return cam[0, 0].detach().double().cpu().numpy()


def cam_to_input(cam: np.ndarray, size: int = 28) -> np.ndarray:
    """An (8, 8) conv2 map drawn at the input's (28, 28) pixels, each cell at its receptive field's centre.

    A plain resize would stretch the 8 cells over the whole image; conv2's cells really look at the
    middle 2·7 + 14 pixels (centres 6.5 .. 20.5), so input pixel y reads cell (y − 6.5) / 2,
    bilinearly, and the border beyond the outer centres repeats the outer cells.
    """
    cam = np.asarray(cam, dtype=np.float64)
    coords = (np.arange(size, dtype=np.float64) - CAM_ORIGIN) / CAM_STRIDE
    rows, cols = np.meshgrid(coords, coords, indexing="ij")
    return ndimage.map_coordinates(cam, [rows, cols], order=1, mode="nearest")


def occlusion(model: nn.Module, x, target: int | None = None, window: int = OCCLUSION_WINDOW,
              stride: int | None = None) -> np.ndarray:
    """Mean drop of the logit when a black `window`×`window` square covers each pixel, (28, 28) float64."""
    x = one_image(x, model)
    cls = _class(model, x, target)
    window = int(window)
    if not 1 <= window <= x.shape[-1]:
        raise ValueError(f"The occlusion window must be 1 to {x.shape[-1]} pixels; got {window}.")
    stride = max(1, window // 2) if stride is None else int(stride)
    with evaluating(model), torch.no_grad():
        attr = Occlusion(model).attribute(x, sliding_window_shapes=(1, window, window), strides=(1, stride, stride),
                                          baselines=0.0, target=cls, perturbations_per_eval=256)
    return attr[0, 0].double().cpu().numpy()


@dataclass(frozen=True, eq=False)
class Bench:
    """The four maps for one image and class, each (28, 28), with the time each took."""

    target: int
    maps: dict[str, np.ndarray]  # METHODS -> (28, 28); Grad-CAM already drawn at input resolution
    cam: np.ndarray  # (8, 8) Grad-CAM as conv2 produced it
    seconds: dict[str, float]
    ig_sum: float  # sum of the Integrated Gradients attributions
    logit_difference: float  # logit(x) − logit(black) for the target


def attribution_bench(model: nn.Module, x, target: int | None = None, ig_steps: int = IG_STEPS,
                      window: int = OCCLUSION_WINDOW) -> Bench:
    """Saliency, Integrated Gradients, Grad-CAM (conv2) and Occlusion for one image and class."""
    x = one_image(x, model)
    cls = _class(model, x, target)
    maps, seconds = {}, {}
    with Stopwatch() as t:
        maps["Saliency"] = saliency_map(model, x, cls)
    seconds["Saliency"] = t.seconds
    with Stopwatch() as t:
        maps["Integrated Gradients"] = integrated_gradients(model, x, cls, steps=ig_steps)
    seconds["Integrated Gradients"] = t.seconds
    with Stopwatch() as t:
        cam = grad_cam(model, x, cls)
        maps["Grad-CAM (conv2)"] = cam_to_input(cam)
    seconds["Grad-CAM (conv2)"] = t.seconds
    with Stopwatch() as t:
        maps["Occlusion"] = occlusion(model, x, cls, window=window)
    seconds["Occlusion"] = t.seconds
    ig_sum, difference = completeness_gap(model, x, cls, maps["Integrated Gradients"])
    return Bench(cls, maps, cam, seconds, ig_sum, difference)


def rank_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman rank correlation of |a| and |b| over all pixels, or those where `mask` is true
    (Adebayo et al.'s "absolute value" variant: a map's sign may flip when weights are random);
    nan when either map is constant there (e.g. a Grad-CAM that is zero everywhere)."""
    a, b = np.abs(np.asarray(a, dtype=np.float64)), np.abs(np.asarray(b, dtype=np.float64))
    if mask is not None:
        a, b = a[np.asarray(mask, dtype=bool)], b[np.asarray(mask, dtype=bool)]
    a, b = a.ravel(), b.ravel()
    if a.size < 3:
        return float("nan")
    if np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def randomised(model: nn.Module, layers, seed: int = 0) -> nn.Module:
    """A copy of `model` whose `layers` are re-initialised (PyTorch's default init, seeded); the rest kept."""
    clone = copy.deepcopy(model)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):  # the caller's random stream is left as it was
        torch.manual_seed(seed)
        for name in layers:
            getattr(clone, name).reset_parameters()
    return clone


@dataclass(frozen=True, eq=False)
class SanityCheck:
    """Maps of the trained model and of its copies randomised cumulatively from the top."""

    target: int
    stages: list[str]  # "trained", "fc2", "fc1", "conv2", "conv1": the lowest layer randomised so far
    maps: list[dict[str, np.ndarray]]  # per stage: METHODS -> (28, 28)
    correlations: dict[str, list[float]]  # per method: rank correlation with the trained map, per stage
    ink_correlations: dict[str, list[float]]  # the same over the pixels with ink (input > 0) only
    seconds: float

    def label(self, stage: str) -> str:
        """Short row label: which layers are random at this stage."""
        if stage == "trained":
            return "trained weights"
        upto = RANDOMISE_ORDER[: RANDOMISE_ORDER.index(stage) + 1]
        if len(upto) == len(RANDOMISE_ORDER):
            return "all four random"
        return (", ".join(upto) if len(upto) <= 2 else f"{upto[0]} … {upto[-1]}") + " random"


def cascading_randomisation(model: nn.Module, x, target: int | None = None, layers=RANDOMISE_ORDER,
                            ig_steps: int = IG_STEPS, window: int = OCCLUSION_WINDOW, seed: int = 0) -> SanityCheck:
    """Adebayo et al.'s cascading randomisation: the four maps after randomising layers[0], then also
    layers[1], ... (top of the network first), compared with the trained model's by rank correlation.

    The class explained is fixed to the trained model's answer (or `target`) at every stage.
    """
    x = one_image(x, model)
    cls = _class(model, x, target)
    with Stopwatch() as watch:
        stages, maps = ["trained"], [attribution_bench(model, x, cls, ig_steps, window).maps]
        for i, name in enumerate(layers):
            copy_ = randomised(model, layers[: i + 1], seed=seed)
            stages.append(name)
            maps.append(attribution_bench(copy_, x, cls, ig_steps, window).maps)
    ink = x[0, 0].cpu().numpy() > 0
    correlations = {m: [rank_correlation(maps[0][m], stage[m]) for stage in maps] for m in METHODS}
    ink_correlations = {m: [rank_correlation(maps[0][m], stage[m], ink) for stage in maps] for m in METHODS}
    return SanityCheck(cls, stages, maps, correlations, ink_correlations, watch.seconds)
