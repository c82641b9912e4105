"""Each lesson's main widgets, declared once: the settings a teacher puts in a link.

Pure Python (no Streamlit), like dashboard.settings_params, whose `Field` and `parse`/`encode` these
reuse: a link such as `…/gradient_descent?surface=Narrow+ravine&lr=0.3&show=Batch+GD,Momentum` opens
lesson 7 on the ravine with lr 0.3, drawing plain gradient descent and Momentum. The lesson pages
take their widgets' defaults from here (dashboard.lesson_settings.setting), so a default lives in one
place; the option lists and ranges are the widgets' own, and a test checks each page against them.

Only widgets whose choices do not depend on other widgets or on the model are here (a row slider
whose range follows the kernel size is not), so that a value accepted here is always one the widget
can show. Lesson 7 is the exception that proves the rule: its learning rate and start point belong to
the chosen surface, so its spec is a function of that choice (see settings_params.Spec).
"""
from __future__ import annotations

from typing import Any, Mapping

from dashboard.settings_params import Field, Spec
from simplecnn.lessons import optim_paths as op
from simplecnn.lessons.activations_losses import FC_ACTIVATIONS

TEST_IMAGES = 10_000  # MNIST's (and Fashion-MNIST's) test split
TRAIN_IMAGES = 60_000
CONV1_CHANNELS, CONV2_CHANNELS, FC1_INPUTS = 32, 64, 1024  # SimpleCNN's layer sizes
LAST_TEST = TEST_IMAGES - 1

# Lesson 3's kernel sources and presets (simplecnn.lessons.convolution.preset_kernels, in its order).
KERNEL_PRESET, KERNEL_LEARNED = "Preset kernel", "SimpleCNN's conv1 filter"
KERNEL_PRESETS = ("Edge (horizontal)", "Edge (vertical)", "Blur (Gaussian)", "Blur (box)", "Sharpen", "Identity")
SHIFTS = ("right", "left", "down", "up")  # simplecnn.lessons.pooling_shift.SHIFTS

# Lesson 7's learning rates: 1, 1.5, 2, 3, 5, 7 in every decade from 1e-4, then 1: numbers a teacher
# says aloud ("lr 0.3"), and every surface's own rate (0.1, 0.15, 0.001) and the quiz's 0.7 are on it.
GD_RATES: tuple[float, ...] = tuple(round(m * 10.0 ** e, 10) for e in range(-4, 0)
                                    for m in (1, 1.5, 2, 3, 5, 7)) + (1.0,)
ADAPTIVE_RATE = 0.05  # the adaptive methods' own rate, when they get one


def nearest_rate(value: float) -> float:
    """The option of GD_RATES closest to `value` on a log scale."""
    import math
    return min(GD_RATES, key=lambda v: abs(math.log(v) - math.log(value)))


def _index(key: str, high: int = LAST_TEST) -> Field:
    return Field("image", key, 0, low=0, high=high, whole=True)


def _lesson07(values: Mapping[str, Any]) -> tuple[Field, ...]:
    surface = values.get("t07_surface", "Bowl")
    s = op.SURFACES.get(surface, op.SURFACES["Bowl"])
    return (
        Field("surface", "t07_surface", "Bowl", options=tuple(op.SURFACES)),
        Field("lr", f"t07_lr_{s.name}", nearest_rate(s.lr), options=GD_RATES),
        Field("show", "t07_show", list(op.OPTIMIZERS), options=op.OPTIMIZERS, many=True),
        Field("momentum", "t07_mom", 0.9, low=0.0, high=0.99, step=0.01),
        Field("beta1", "t07_b1", 0.9, low=0.0, high=0.99, step=0.01),
        Field("beta2", "t07_b2", 0.99, low=0.5, high=0.999, step=0.001),
        Field("steps", "t07_steps", 150, low=10, high=500, step=10, whole=True),
        Field("noise", "t07_noise", 1.0, low=0.0, high=5.0, step=0.1),
        Field("seed", "t07_seed", 0, low=0, high=10_000, whole=True),
        Field("x", f"t07_x_{s.name}", float(s.start[0]), low=float(s.x_range[0]), high=float(s.x_range[1]),
              step=0.01),
        Field("y", f"t07_y_{s.name}", float(s.start[1]), low=float(s.y_range[0]), high=float(s.y_range[1]),
              step=0.01),
        Field("own_rate", "t07_own", False, flag=True),
        Field("adaptive_lr", "t07_alr", nearest_rate(ADAPTIVE_RATE), options=GD_RATES),
    )


LESSONS: dict[str, Spec] = {
    "01": (
        Field("split", "t01_split", "test", options=("test", "train")),
        Field("view", "t01_view", "bytes (uint8, on disk)",
              options=("bytes (uint8, on disk)", "floats in [0, 1] (what the model reads)")),
        Field("batch", "t01_batch", 64, low=1, high=256, whole=True),
    ),
    "02": (
        Field("inputs", "t02_n", 4, options=(3, 4)),
        Field("activation", "t02_act", "ReLU", options=tuple(FC_ACTIVATIONS)),
        Field("slope", "t02_slope", 0.01, low=0.0, high=0.5, step=0.01),
        Field("bias", "t02_bias", 0.2, low=-2.0, high=2.0, step=0.1),
    ),
    "03": (
        _index("t03_index"),
        Field("kernel", "t03_source", KERNEL_PRESET, options=(KERNEL_PRESET, KERNEL_LEARNED)),
        Field("preset", "t03_preset", KERNEL_PRESETS[0], options=KERNEL_PRESETS),
        Field("bias", "t03_bias", 0.0, low=-1.0, high=1.0, step=0.05),
        Field("filter", "t03_filter", 0, low=0, high=CONV1_CHANNELS - 1, whole=True),
        Field("H", "t03_h", 28, low=1, high=256, whole=True),
        Field("k", "t03_k", 5, low=1, high=15, whole=True),
        Field("p", "t03_p", 0, low=0, high=10, whole=True),
        Field("s", "t03_s", 1, low=1, high=10, whole=True),
        Field("d", "t03_d", 1, low=1, high=5, whole=True),
    ),
    "04": (
        _index("t04_index"),
        Field("channel", "t04_channel", 0, low=0, high=CONV1_CHANNELS - 1, whole=True),
        Field("k", "t04_k", 2, low=1, high=6, whole=True),
        Field("s", "t04_s", 2, low=1, high=6, whole=True),
        Field("shift", "t04_shift", SHIFTS[0], options=SHIFTS),
    ),
    "05": (
        Field("slope", "t05_slope", 0.1, low=0.0, high=0.5, step=0.01),
        Field("range", "t05_span", 5.0, low=1.0, high=10.0, step=0.5),
        Field("x", "t05_probe", 0.5, low=-10.0, high=10.0, step=0.1),
        Field("classes", "t05_nclasses", 4, low=2, high=6, whole=True),
        Field("T", "t05_T", 1.0, low=0.1, high=5.0, step=0.1),
    ),
    "06": (
        Field("true_class", "t06_true", 1, options=(0, 1, 2, 3)),
        Field("images", "t06_count", 500, low=100, high=2000, step=100, whole=True),
    ),
    "07": _lesson07,
    "08": (
        Field("lr", "adam_lr", 0.1, low=0.0001, high=10.0),
        Field("beta1", "adam_beta1", 0.9, low=0.0, high=0.99, step=0.01),
        Field("beta2", "adam_beta2", 0.999, options=(0.5, 0.9, 0.99, 0.999, 0.9999)),
        Field("eps", "adam_eps", 1e-8, options=(1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1e-1, 1.0)),
        Field("k", "adam_k", 1.0, options=(0.01, 0.1, 1.0, 10.0, 100.0)),
        Field("start", "adam_theta0", 0.0, low=-20.0, high=20.0),
        Field("steps", "adam_steps", 10, low=3, high=40, whole=True),
    ),
    "09": (
        Field("x", "bp_x", 1.5, low=-5.0, high=5.0),
        Field("w", "bp_w", 0.8, low=-5.0, high=5.0),
        Field("b", "bp_b", -0.2, low=-5.0, high=5.0),
        Field("t", "bp_t", 1.0, low=0.0, high=1.0),
        Field("lr", "bp_lr", 1.0, low=0.0, high=5.0, step=0.1),
        _index("bp_digit"),
        Field("channel", "bp_channel", 0, low=0, high=CONV1_CHANNELS - 1, whole=True),
    ),
    "10": (
        _index("do_index"),
        Field("p", "do_p", 0.45, low=0.0, high=0.9, step=0.05),
        Field("seed", "do_seed", 0, low=0, high=10_000, whole=True),
        Field("channel", "do_channel", 0, low=0, high=CONV1_CHANNELS - 1, whole=True),
    ),
    "11": (
        Field("batch", "bn_batch", 64, options=(2, 4, 8, 16, 32, 64, 128, 256)),
        Field("first", "bn_start", 0, low=0, high=TEST_IMAGES - 256, whole=True),
        Field("channel", "bn_channel", 0, low=0, high=CONV1_CHANNELS - 1, whole=True),
    ),
    "12": (
        Field("images", "of_subset", 300, options=(50, 100, 200, 300, 500, 1000, 2000)),
        Field("val_split", "of_val", 0.4, low=0.2, high=0.6, step=0.05),
        Field("epochs", "of_epochs", 6, low=1, high=30, whole=True),
    ),
    "13": (
        Field("per_class", "mn_per_class", 10, low=4, high=16, whole=True),
        Field("seed", "mn_seed", 0, low=0, high=10_000, whole=True),
    ),
    "14": (
        _index("lw_index"),
        Field("maps", "lw_per_stage", 8, low=4, high=12, whole=True),
        Field("channel", "lw_channel", 0, low=0, high=CONV1_CHANNELS - 1, whole=True),
        Field("fc1_input", "lw_flat_index", 0, low=0, high=FC1_INPUTS - 1, whole=True),
    ),
    "15": (
        Field("start", "ts_start", "this model", options=("this model", "a fresh SimpleCNN")),
        Field("optimizer", "ts_optimizer", "SGD", options=("SGD", "Adam")),
        Field("lr", "ts_lr", 0.1, options=(0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0)),
        Field("batch", "ts_batch", 0, low=0, high=TRAIN_IMAGES // 64 - 1, whole=True),
    ),
    "16": (
        Field("model", "mb_start", "a fresh SimpleCNN", options=("a fresh SimpleCNN", "this model")),
        Field("batches", "mb_batches", 6, low=4, high=12, whole=True),
        Field("seed", "mb_seed", 0, low=0, high=10_000, whole=True),
    ),
}


def default(key: str) -> Any:
    """The default of the lesson widget with this session-state key (lesson 7 at its Bowl defaults)."""
    for spec in LESSONS.values():
        for field in (spec({}) if callable(spec) else spec):
            if field.key == key:
                return field.default
    raise KeyError(f"no lesson setting has the key {key!r}")
