"""Explain: attack the model, ask four methods why it answered, and move the digit until it stops reading it.

Three sections on one input (a test image by default, or the learner's drawing) and one model (the
same picker as Draw and Inside): adversarial attacks (FGSM, PGD, the smallest targeted change, and
robustness compared between two models), an attribution bench with Adebayo et al.'s sanity check,
an invariance probe, and activation maximisation of one unit beside the test images that excite it most. The computations live in `simplecnn.explain`; each result is kept in this
session keyed by (model, weights version, input bytes, settings), so moving one slider recomputes
one thing. A learner's model is never put in a server-wide cache.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import astuple, dataclass

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitInvalidLayoutContextError
import torch

from dashboard.charts import show_chart
from dashboard import nav, state
from dashboard.drawing_input import digit_input
from simplecnn import explain_plots, plots
from simplecnn.drawing import preprocess_steps
from simplecnn.explain import attacks, attribution, invariance, maximise
from simplecnn.explain.common import Stopwatch, one_image, probabilities
from simplecnn.explain.invariance import PROBES, Pose
from simplecnn.inspection import as_batch

CANVAS = "explain_canvas"  # dashboard.drawing_input names its canvas "<name>_canvas" (name "explain")
SHORT = {"Saliency": "Saliency", "Integrated Gradients": "IG", "Grad-CAM (conv2)": "Grad-CAM", "Occlusion": "Occlusion"}
SOURCES = ("Test image", "Your drawing")
CACHE = "_explain_cache"  # session_state: kind -> {key: result}, a few entries per kind
CACHE_ENTRIES = 8
TARGET_MAX_EPS = 0.5  # the targeted search looks inside this L∞ ball
ROBUST_IMAGES = 100  # test images for the robustness comparison
ROBUST_EPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
ROBUST_PGD_STEPS = 10
SLIDERS = {  # probe name -> (min, max, step, format) of its slider; the curves span the same range
    "shift_x": (-10.0, 10.0, 1.0, "%+.0f px"),
    "shift_y": (-10.0, 10.0, 1.0, "%+.0f px"),
    "angle": (-90.0, 90.0, 5.0, "%+.0f°"),
    "scale": (0.4, 2.0, 0.05, "×%.2f"),
    "thickness": (-1.0, 3.0, 0.25, "%+.2f px"),
}


# -- session cache ---------------------------------------------------------------------------------
def memo(kind: str, key: tuple, compute):
    """`compute()` once per key in this session; the newest CACHE_ENTRIES results of each kind are kept."""
    store = st.session_state.setdefault(CACHE, {}).setdefault(kind, {})
    if key in store:
        store[key] = store.pop(key)  # newest last
        return store[key]
    value = compute()
    store[key] = value
    while len(store) > CACHE_ENTRIES:
        store.pop(next(iter(store)))
    return value


def model_tag(key: str) -> tuple[str, int]:
    """(model choice, weights version): changes whenever the chosen model's weights do."""
    entry = state.runs().get(key)
    return key, entry.job.weights_version if entry is not None and entry.job is not None else 0


def digest(x: torch.Tensor) -> str:
    return hashlib.blake2b(x.numpy().tobytes(), digest_size=16).hexdigest()


def trained_with_shifts(key: str) -> bool | None:
    """Whether the model was trained with random ±2 px shifts (TrainConfig.augment); None if unknown."""
    if key == state.BUNDLED:
        config = state.bundled_model_meta().get("config") or {}
        return config.get("augment") if isinstance(config, dict) else None
    entry = state.runs().get(key)
    if entry is not None and entry.job is not None:
        return bool(entry.job.config.augment)
    return None


# -- the input -------------------------------------------------------------------------------------
def pick_input(ds) -> tuple[torch.Tensor | None, str, int | None]:
    """(1, 1, 28, 28) input, its description, its true class (None for a drawing or a photo)."""
    source = st.segmented_control("Input", SOURCES, default=SOURCES[0], key="explain_source", required=True)
    if source == "Your drawing":
        given = digit_input("explain")  # drawn, painted cell by cell, a sample digit or an uploaded photo
        steps = preprocess_steps(given.image, ink=given.ink) if given is not None else None
        if steps is None:
            st.info("Draw a digit, or paint, pick or upload one: it is prepared like an MNIST digit, as on Draw.",
                    icon=":material/draw:")
            return None, "", None
        return steps.tensor.float(), given.source, given.true_class
    n = len(ds.test_labels)
    index = int(st.number_input(f"Test image index (0–{n - 1})", min_value=0, max_value=n - 1, value=0, step=1,
                                key="explain_index"))
    return as_batch(ds.test_images[index]), f"test image #{index}", int(ds.test_labels[index])


def reading(model, x: torch.Tensor) -> np.ndarray:
    """The model's probabilities (num_classes,) for one image."""
    return probabilities(model, one_image(x, model))[0]


# -- 1. attacks ------------------------------------------------------------------------------------
def attack_section(key: str, x: torch.Tensor, dig: str, classes) -> None:
    model = state.get_model(key)
    if model is None:
        st.warning("This model is no longer available: pick another one above.")
        return
    tag = model_tag(key)
    probs = reading(model, x)
    answer = int(probs.argmax())
    st.markdown(f"An attack changes every pixel by at most **ε** (on the 0–1 scale the network reads, so "
                f"ε = 0.1 is 26 of 255 grey levels) in the direction that hurts the model's answer, "
                f"**{classes[answer]}**, most. **FGSM** takes one step of size ε along the sign of the "
                "gradient; **PGD** takes many small steps and stays inside the ε limit, so it finds stronger "
                "changes of the same size.")
    c1, c2, c3 = st.columns([1.1, 2, 1.4], vertical_alignment="bottom")
    method = c1.segmented_control("Attack", attacks.METHODS, default="FGSM", key="explain_method", required=True)
    eps = float(c2.slider("ε: the most any pixel may change", 0.0, 0.5, 0.1, 0.01, key="explain_eps",
                          format="%.2f"))
    steps = int(c3.slider("PGD steps", 1, attacks.MAX_PGD_STEPS, attacks.PGD_STEPS, key="explain_steps",
                          disabled=method != "PGD", help="Each step moves every pixel by 2.5·ε/steps, then "
                          "projects back into the ε limit and into 0–1."))
    steps = steps if method == "PGD" else 1
    result = memo("attack", (tag, dig, method, eps, steps, answer),
                  lambda: attacks.attack(model, x, answer, eps, method, steps))
    after = result.after
    outcome = (f"now says **{classes[after]}** with {result.probs_after[after]:.1%}"
               if after != answer else f"still says **{classes[answer]}**, now with {result.probs_after[answer]:.1%}")
    st.markdown(f"**{method}, ε = {eps:.2f}**: the model {outcome} (before: {result.probs_before[answer]:.1%}).")
    left, right = st.columns([3, 2])
    with left:
        show_chart(explain_plots.attack_images(result.original, result.perturbed, eps), key="explain_attack_fig",
                   config={"displayModeBar": False},
                   alt=f"Three 28×28 images: the original digit, the digit after the {method} attack with "
                       f"ε = {eps:.2f}, and the change magnified, signed around zero.")
    with right:
        show_chart(explain_plots.probability_change(result.probs_before, result.probs_after, classes),
                        key="explain_attack_probs", config={"displayModeBar": False})
    st.caption(f"The change: {result.changed_pixels} of 784 pixels moved, none by more than L∞ = {result.linf:.3f} "
               f"({result.linf * 255:.0f} of 255 grey levels); its length over all pixels is L2 = {result.l2:.2f}. "
               f"The right panel shows it magnified. Computed in {result.seconds * 1000:.0f} ms.")

    st.subheader("Make it a …")
    options = list(range(len(classes)))
    default = 7 if answer != 7 else 3
    target = int(st.selectbox("Target class", options, index=default, format_func=lambda c: classes[c],
                              key="explain_target"))
    search = memo("target", (tag, dig, target),
                  lambda: attacks.smallest_targeted_change(model, x, target, max_epsilon=TARGET_MAX_EPS))
    found = search.found
    if found is None:
        st.info(f"No change within ε = {TARGET_MAX_EPS} made the model say **{classes[target]}** "
                f"({len(search.tried)} tries, {search.seconds:.1f} s).")
    elif found.epsilon == 0.0:
        st.info(f"The model already says **{classes[target]}**: no change is needed. Pick another class.")
    else:
        st.markdown(f"Smallest change found: **ε = {found.epsilon:.3f}**. The model says **{classes[found.after]}** "
                    f"with {found.probs_after[found.after]:.1%}. Measured on the returned image: "
                    f"**L∞ = {found.linf:.3f}** ({found.linf * 255:.0f} of 255 grey levels per pixel at most), "
                    f"**L2 = {found.l2:.2f}**, {found.changed_pixels} pixels changed.")
        left, right = st.columns([3, 2])
        with left:
            show_chart(explain_plots.attack_images(found.original, found.perturbed, found.epsilon),
                       key="explain_target_fig", config={"displayModeBar": False},
                       alt=f"Three 28×28 images: the original digit, the changed digit the model reads as "
                           f"{classes[found.after]} (ε = {found.epsilon:.3f}), and the change magnified.")
        with right:
            show_chart(explain_plots.probability_change(found.probs_before, found.probs_after, classes),
                            key="explain_target_probs", config={"displayModeBar": False})
        st.caption(f"Targeted PGD ({found.steps} steps) inside an ε limit found by halving: "
                   f"{len(search.tried)} tries in {search.seconds:.2f} s. At ε = {search.largest_failure:.3f} it did "
                   f"not reach {classes[target]}, so the smallest ε lies between the two (for this search; "
                   "a cleverer attack may need less).")
    robustness_comparison(key, classes)


def compare_choices(key: str) -> dict[str, str]:
    return {k: label for k, label in state.model_choices().items() if k != key}


def robustness_comparison(key: str, classes) -> None:
    st.subheader("How robust is this model?")
    others = compare_choices(key)
    options = [""] + list(others)
    default = (state.BUNDLED if state.BUNDLED in others
               else next(reversed(others), ""))
    other = st.selectbox("Compare with", options, index=options.index(default), key="explain_compare",
                         format_func=lambda k: others.get(k, "no other model"))
    keys = [key] + ([other] if other else [])
    ds = state.dataset()
    cache_key = tuple(model_tag(k) for k in keys) + (state.dataset_name(),)
    store = st.session_state.setdefault(CACHE, {}).setdefault("robust", {})
    pressed = st.button(f"Attack {ROBUST_IMAGES} test images at {len(ROBUST_EPS)} values of ε", key="explain_robust",
                   icon=":material/shield:",
                   help=f"FGSM and PGD ({ROBUST_PGD_STEPS} steps) on the first {ROBUST_IMAGES} test images, for "
                        "each model. Several seconds per model on a small CPU.")
    if pressed and cache_key not in store:
        bar = st.progress(0.0, text="Attacking…")
        images, labels = ds.test_images[:ROBUST_IMAGES], ds.test_labels[:ROBUST_IMAGES]
        total, done = 2 * len(keys) * len(ROBUST_EPS), [0]
        curves, seconds = {}, {}
        for k in keys:
            model = state.get_model(k)
            if model is None:
                continue
            label = "this model" if k == key else "compared model"
            curves[label] = {}
            with Stopwatch() as watch:
                for method in attacks.METHODS:
                    def tick(_i, _n, method=method):
                        done[0] += 1
                        bar.progress(done[0] / total, text=f"{method} on {label}: {done[0]}/{total}")
                    curves[label][method] = attacks.accuracy_under_attack(
                        model, images, labels, ROBUST_EPS, method, steps=ROBUST_PGD_STEPS, progress=tick)
            seconds[label] = watch.seconds
        bar.empty()
        store.clear()  # one comparison at a time is enough
        store[cache_key] = (curves, seconds)
    if cache_key not in store:
        st.caption("Press the button to measure how accuracy falls as ε grows"
                   + (f", for this model and {others[other]}." if other else "."))
        return
    curves, seconds = store[cache_key]
    names = {"this model": state.model_choices().get(key, key)}
    if other:
        names["compared model"] = others.get(other, other)
    show_chart(explain_plots.robustness_curves(ROBUST_EPS, curves), key="explain_robust_fig",
                    config={"displayModeBar": False})
    rows = []
    for label, by_method in curves.items():
        row = {"model": f"{label}: {names.get(label, '')}", "clean accuracy": f"{by_method['FGSM'][0]:.0%}"}
        for method, acc in by_method.items():
            eps = attacks.epsilon_at_accuracy(ROBUST_EPS, acc, 0.5)
            row[f"ε where {method} accuracy < 50 %"] = f"{eps:.3f}" if eps is not None else f"> {ROBUST_EPS[-1]}"
        row["time"] = f"{seconds[label]:.1f} s"
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("A larger ε before the accuracy halves means a more robust model. Training with shifted digits "
               "does not buy robustness to these changes: they are tiny everywhere, not a move of the whole digit.")


# -- 2. attributions -------------------------------------------------------------------------------
def attribution_section(key: str, x: torch.Tensor, dig: str, classes) -> None:
    model = state.get_model(key)
    if model is None:
        return
    tag = model_tag(key)
    answer = int(reading(model, x).argmax())
    st.markdown("Four ways to ask which pixels made the model give a class its score (the logit before "
                "softmax). They answer different questions, so they disagree.")
    c1, c2, c3 = st.columns([2, 2, 2], vertical_alignment="bottom")
    # -1 stands for "whatever the model answers" (a None option would show as an empty box)
    choice = int(c1.selectbox("Explain the score of", [-1] + list(range(len(classes))), key="explain_attr_class",
                              format_func=lambda c: f"the model's answer ({classes[answer]})" if c < 0 else classes[c]))
    cls = answer if choice < 0 else choice
    ig_steps = int(c2.slider("Integrated Gradients steps", 8, attribution.MAX_IG_STEPS, attribution.IG_STEPS,
                             step=8, key="explain_ig_steps"))
    window = int(c3.slider("Occlusion square (px)", 2, 8, attribution.OCCLUSION_WINDOW, key="explain_window",
                           help="Moved in steps of half its side: 13×13 positions for 4 px."))
    bench = memo("bench", (tag, dig, cls, ig_steps, window),
                 lambda: attribution.attribution_bench(model, x, cls, ig_steps, window))
    show_chart(explain_plots.attribution_maps(x, bench.maps, attribution.SIGNED), key="explain_bench_fig",
               config={"displayModeBar": False},
               alt=f"{len(bench.maps)} attribution maps of the 28×28 input for class {classes[cls]}, "
                   f"{', '.join(bench.maps)}, each scaled to its own largest value, with the digit's outline.")
    for col, method in zip(st.columns(4), attribution.METHODS):
        col.caption(f"**{method}**: {attribution.WHAT_IT_MEASURES[method]} ({bench.seconds[method] * 1000:.0f} ms)")
    gap = bench.ig_sum - bench.logit_difference
    st.markdown(f"Integrated Gradients for **{classes[cls]}** add up to **{bench.ig_sum:.3f}**; the score of the "
                f"image minus the score of a black image is **{bench.logit_difference:.3f}** (gap {gap:+.3f}, "
                f"{ig_steps} steps). Each map is scaled to its own largest value; the blue line is the digit's outline.")
    if float(np.abs(bench.cam).max()) == 0.0:
        st.info("Grad-CAM is zero everywhere here: the weighted sum of conv2's maps is negative at every "
                "position, and Grad-CAM keeps only the positive part.", icon=":material/info:")

    st.subheader("Sanity check: do the maps depend on the weights?")
    st.markdown("Adebayo et al. (2018) proposed a test: destroy the model's weights layer by layer, from the top "
                "(fc2, then fc1, conv2, conv1), and recompute each map. An explanation of the *model* must "
                "change; a map that stays the same is showing the *image*. Guess which maps will survive, then run it.")
    check_key = (tag, dig, cls, ig_steps, window)
    store = st.session_state.setdefault(CACHE, {}).setdefault("sanity", {})
    if st.button("Randomise layer by layer", key="explain_sanity", icon=":material/shuffle:") and check_key not in store:
        with st.spinner("Recomputing the four maps for each randomised copy…"):
            store.clear()
            store[check_key] = attribution.cascading_randomisation(model, x, cls, ig_steps=ig_steps, window=window)
    check = store.get(check_key)
    if check is None:
        return
    labels = [check.label(s) for s in check.stages]
    show_chart(explain_plots.attribution_grid(x, check.maps, attribution.SIGNED, row_titles=labels),
               key="explain_sanity_fig", config={"displayModeBar": False},
               alt=f"A grid of attribution maps: one row per model ({', '.join(labels)}), one column per "
                   f"method ({', '.join(attribution.METHODS)}).")
    table = pd.DataFrame({"weights": labels})
    for method in attribution.METHODS:
        table[f"{SHORT[method]} · all"] = check.correlations[method]
        table[f"{SHORT[method]} · ink"] = check.ink_correlations[method]
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in table.columns[1:]})
    sal, ig = check.correlations["Saliency"][-1], check.correlations["Integrated Gradients"][-1]
    st.caption(f"Spearman rank correlation of |map| with the trained model's map (1 = same order of importance), "
               "over all 784 pixels (all) or over the pixels with ink (ink). "
               f"With every layer random, Saliency keeps {sal:.2f} and Integrated Gradients {ig:.2f} over the whole "
               "image. Integrated Gradients and Occlusion are zero wherever the image is black, whatever the "
               "weights, so the digit's shape survives in them; over the ink alone they change more. "
               f"Computed in {check.seconds:.1f} s.")


# -- 3. what excites a unit ------------------------------------------------------------------------
UNIT_KINDS = {"class": "Class logit", "conv1": "conv1 channel", "conv2": "conv2 channel", "fc1": "fc1 unit"}
REDUCE_LABELS = {"mean": "Mean over its map", "centre": "Centre position"}
SEARCHES = "_explain_searches"  # session_state: search key -> Search, the newest CACHE_ENTRIES kept
SEARCH_MAX_STEPS = 500
SEARCH_MAX_SECONDS = 20.0  # a search stops here whatever its step count
CHUNK_SECONDS = 0.5  # one fragment run steps for about this long, then redraws and reruns itself
REPORT_EVERY = 2 * maximise.BLUR_EVERY  # steps between two points: always just after a blur, so the curve
# compares like with like (reports between blurs zigzag, a blurred image scoring lower than a sharp one)


@dataclass
class Search:
    """One activation-maximisation search kept between fragment runs: its state (`Ascent`, which holds
    no model and no hook), the steps asked for, the wall time spent so far, and how it stands."""

    ascent: maximise.Ascent
    target: int
    status: str = "running"  # running, done, stopped, time limit
    seconds: float = 0.0
    last: maximise.Step | None = None


def _start_search(search_key: tuple, unit: maximise.Unit, settings: maximise.Settings, steps: int) -> None:
    """Run button: a fresh search replaces any earlier one with the same settings."""
    store = st.session_state.setdefault(SEARCHES, {})
    store.pop(search_key, None)
    store[search_key] = Search(maximise.Ascent(unit, settings), steps)
    while len(store) > CACHE_ENTRIES:
        store.pop(next(iter(store)))


def _stop_searches() -> None:
    """Stop button (a callback, so it runs before the next fragment run looks at the searches)."""
    for search in st.session_state.get(SEARCHES, {}).values():
        if search.status == "running":
            search.status = "stopped"


def advance(search: Search, model) -> None:
    """Step the search for about CHUNK_SECONDS. Closing the generator removes the unit's hook, so no
    hook outlives this call, even on the bundled model that every session shares."""
    with Stopwatch() as watch, contextlib.closing(
            search.ascent.run(model, search.target - search.ascent.step, REPORT_EVERY)) as reports:
        for report in reports:
            search.last = report
            if time.perf_counter() - watch.start > CHUNK_SECONDS:
                break
    search.seconds += watch.seconds
    if search.ascent.step >= search.target:
        search.status = "done"
    elif search.seconds >= SEARCH_MAX_SECONDS:
        search.status = "time limit"


@st.cache_data(max_entries=256, show_spinner=False)
def bundled_top_images(tag: tuple, dataset_name: str, unit: tuple) -> tuple[maximise.TopImages, float]:
    """Top test images for the bundled model, shared by every session: the key holds the model's
    weights version, and a learner's model never comes here."""
    return top_and_mean(state.get_model(state.BUNDLED), state.shared_dataset(dataset_name), maximise.Unit(*unit))


def top_and_mean(model, ds, unit: maximise.Unit) -> tuple[maximise.TopImages, float]:
    """The 9 test images that excite the unit most, and the unit's value on the average test image."""
    top = maximise.top_images(model, ds, unit, k=9)
    average = as_batch(ds.test_images).mean(dim=0, keepdim=True)
    return top, float(maximise.unit_values(model, average, unit)[0])


def top_for(key: str, model, unit: maximise.Unit) -> tuple[maximise.TopImages, float]:
    if key == state.BUNDLED:
        return bundled_top_images(model_tag(key), state.dataset_name(), astuple(unit))
    return memo("top", (model_tag(key), state.dataset_name(), unit), lambda: top_and_mean(model, state.dataset(), unit))


def pick_unit(model, classes) -> maximise.Unit:
    """The unit selector: a class logit, a conv1/conv2 channel (mean or centre) or an fc1 unit."""
    c1, c2, c3 = st.columns([2.6, 1.1, 1.6], vertical_alignment="bottom")
    layer = c1.segmented_control("Unit", list(UNIT_KINDS), default="class", format_func=UNIT_KINDS.get,
                                 key="explain_max_layer", required=True)
    if layer == "class":
        index = int(c2.selectbox("Class", list(range(len(classes))), index=min(3, len(classes) - 1),
                                 format_func=lambda c: classes[c], key="explain_max_class"))
        return maximise.Unit("class", index)
    size = maximise.Unit(layer, 0).size(model)
    index = int(c2.number_input(f"{UNIT_KINDS[layer].split()[1].capitalize()} (0–{size - 1})", 0, size - 1,
                                value=0, step=1, key=f"explain_max_{layer}_index"))
    reduce = "mean"
    if layer != "fc1":
        reduce = c3.segmented_control("Read the channel at", list(REDUCE_LABELS), default="mean",
                                      format_func=REDUCE_LABELS.get, key="explain_max_reduce", required=True)
    return maximise.Unit(layer, index, reduce)


def maximise_section(key: str, classes) -> None:
    """Activation maximisation shown as it runs, beside the test images that excite the same unit.

    Design: a Streamlit script run cannot be interrupted by a click inside a fragment (fragment
    reruns queue behind the running one), and a background thread may not call st.*. So each run
    of this fragment takes steps for about CHUNK_SECONDS, draws the progress, and asks for the next
    fragment run with st.rerun(scope="fragment") while the search is unfinished. The Stop button's
    callback marks the search stopped before the next chunk, so it takes effect within one chunk.
    The search's state between chunks is a `maximise.Ascent` in session_state (no model, no hook);
    the unit's hook exists only inside `advance`.
    """
    model = state.get_model(key)
    if model is None:
        return
    tag = model_tag(key)
    st.markdown("Instead of asking about one image, ask a unit of the network what it *wants*: start from a "
                "faint grey image and change its pixels, step by step, in the direction that raises the unit's "
                "value most (gradient ascent on the input, the weights stay as they are). Beside it: the nine "
                "real test images that give the same unit its largest values.")
    unit = pick_unit(model, classes)
    c1, c2, c3, c4 = st.columns(4, vertical_alignment="bottom")
    jitter = int(c1.slider("Jitter (px)", 0, 4, 1, key="explain_max_jitter",
                           help="Before each step the image is shifted by up to this many pixels at random, so the "
                                "pattern has to work wherever it sits."))
    blur = float(c2.slider("Blur σ (px)", 0.0, 2.0, 0.5, 0.1, key="explain_max_blur",
                           help=f"Every {maximise.BLUR_EVERY} steps the image is smoothed by a Gaussian this wide, "
                                "which wipes out pixel-sized noise."))
    decay = float(c3.slider("L2 decay", 0.0, 0.05, 0.0, 0.005, key="explain_max_decay", format="%.3f",
                            help="After each step every pixel is multiplied by (1 − decay): only pixels the unit "
                                 "keeps asking for stay bright."))
    steps = int(c4.slider("Steps", 50, SEARCH_MAX_STEPS, 200, 50, key="explain_max_steps"))
    settings = maximise.Settings(jitter=jitter, blur=blur, decay=decay)
    search_key = (tag, state.dataset_name(), unit, settings, steps)
    store = st.session_state.setdefault(SEARCHES, {})
    for k, other in store.items():  # a search left behind by a change of settings does not resume later
        if k != search_key and other.status == "running":
            other.status = "stopped"
    search = store.get(search_key)
    if search is not None and search.status == "running":
        advance(search, model)
    running = search is not None and search.status == "running"
    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Run", key="explain_max_run", icon=":material/play_arrow:", type="primary", disabled=running,
              on_click=_start_search, args=(search_key, unit, settings, steps))
    # Stop is always enabled; pressed with nothing running, it does nothing.
    b2.button("Stop", key="explain_max_stop", icon=":material/stop:", on_click=_stop_searches)
    if search is None or search.last is None:
        st.caption(f"Press Run: up to {SEARCH_MAX_STEPS} steps, stopped after {SEARCH_MAX_SECONDS:.0f} s at most.")
        return
    show_search(key, model, unit, search, classes)
    if running:
        next_chunk()


def next_chunk() -> None:
    """Ask for the next chunk: a rerun of this fragment alone, or of the whole page when this fragment
    is running as part of a full page run (Streamlit allows scope="fragment" only in fragment reruns)."""
    try:
        st.rerun(scope="fragment")
    except StreamlitInvalidLayoutContextError:
        st.rerun()


def show_search(key: str, model, unit: maximise.Unit, search: Search, classes) -> None:
    """Progress, the searched image, its curve against the best real images, and those images."""
    last = search.last
    st.progress(min(1.0, last.step / search.target),
                text=f"Step {last.step} of {search.target} · {search.seconds:.1f} s")
    top, average = top_for(key, model, unit)
    name = unit.label(classes)
    left, middle, right = st.columns([1, 1.4, 1])
    with left:
        show_chart(explain_plots.unit_image(last.image, f"Step {last.step}: {last.objective:.2f}"),
                   key="explain_max_image", config={"displayModeBar": False},
                   alt=f"The 28×28 image the search made to excite {name}, on a grey scale from 0 to 1.")
    with middle:
        steps, values = zip(*search.ascent.history)
        references = {"best test image": float(top.values[0]), "9th best": float(top.values[-1]),
                      "average test image": average}
        show_chart(explain_plots.objective_curve(steps, values, references, label=name),
                        key="explain_max_curve", config={"displayModeBar": False})
    with right:
        labels = state.dataset().test_labels
        captions = [f"#{i} · {classes[int(labels[i])]} · {v:.1f}" for i, v in zip(top.indices, top.values)]
        show_chart(explain_plots.top_image_grid(top.images, captions), key="explain_max_top",
                   config={"displayModeBar": False},
                   alt=f"The {len(captions)} test images that excite {name} most, each titled with its index, "
                       f"class and value: {'; '.join(captions)}.")
    state_text = {"running": "Searching…", "done": "Done.", "stopped": f"Stopped at step {last.step}.",
                  "time limit": f"Stopped at the {SEARCH_MAX_SECONDS:.0f} s limit, step {last.step}."}[search.status]
    per_100 = 100 * search.seconds / max(1, search.ascent.step)
    st.markdown(f"{state_text} The search gives **{name}** the value **{last.objective:.2f}** at step {last.step}; "
                f"the most exciting test image gives **{top.values[0]:.2f}**, the 9th **{top.values[-1]:.2f}**, "
                f"the average test image **{average:.2f}**.")
    st.caption(f"{search.ascent.step} steps in {search.seconds:.2f} s ({per_100:.2f} s per 100 steps, the "
               f"curve's points included); the test images: one pass over {len(labels):,} images in "
               f"{top.seconds:.1f} s when first computed. Each caption: test index · true class · value. "
               "A search can beat every real image: it is free to draw things no one writes, which is why the "
               "regularisers are needed to keep it readable.")


# -- 6. invariance ---------------------------------------------------------------------------------
def setting(name: str, value: float) -> str:
    """A probe value as the learner reads it: "+3 px", "−15°", "×1.25"."""
    if name == "scale":
        return f"×{value:g}"
    sign = "+" if value > 0 else ("−" if value < 0 else "")
    unit = PROBES[name].unit
    return f"{sign}{abs(value):g}{'' if unit == '°' else ' '}{unit}"


def _reset_pose() -> None:
    for name in SLIDERS:
        st.session_state[f"explain_{name}"] = float(getattr(Pose(), PROBES[name].field))


def invariance_section(key: str, x: torch.Tensor, dig: str, classes) -> None:
    model = state.get_model(key)
    if model is None:
        return
    tag = model_tag(key)
    cls = int(reading(model, x).argmax())
    st.markdown(f"Move, turn, resize and thicken the input and watch the model's confidence in **{classes[cls]}** "
                "(its answer for the unchanged input). Each curve varies one setting over its whole range, the "
                "others staying where the sliders are: one batched forward pass per curve.")
    values = {}
    cols = st.columns(len(SLIDERS) + 1, vertical_alignment="bottom")
    for col, (name, (lo, hi, step, fmt)) in zip(cols, SLIDERS.items()):
        neutral = float(getattr(Pose(), PROBES[name].field))
        values[name] = float(col.slider(PROBES[name].label, lo, hi, neutral, step, format=fmt, key=f"explain_{name}"))
    cols[-1].button("Reset", key="explain_reset", icon=":material/restart_alt:", on_click=_reset_pose)
    pose = Pose(**{PROBES[name].field: v for name, v in values.items()})
    curves = memo("probe", (tag, dig, astuple(pose), cls), lambda: invariance.probe_all(model, x, pose, cls))
    moved = invariance.transform(x, pose)
    probs = reading(model, moved)
    now = int(probs.argmax())
    left, right = st.columns([1, 3])
    with left:
        show_chart(plots.digit_image(moved, height=230), key="explain_moved_fig",
                   config={"displayModeBar": False},
                   alt=f"The digit after the chosen shift, rotation, scale and thickness: 28×28 grey pixels, "
                       f"read as {classes[now]}.")
        if now == cls:
            st.markdown(f"The model still reads **{classes[now]}** ({probs[now]:.1%}).")
        else:
            st.markdown(f"The model now reads **{classes[now]}** ({probs[now]:.1%}); "
                        f"P({classes[cls]}) = {probs[cls]:.1%}.")
    with right:
        grid = st.columns(3)
        for i, (name, curve) in enumerate(curves.items()):
            spec = PROBES[name]
            with grid[i % 3]:
                show_chart(explain_plots.probe_curve(curve.values, curve.confidence, curve.predicted, cls, classes,
                                                          values[name], spec.label, spec.unit, curve.readable_range()),
                                key=f"explain_probe_{name}", config={"displayModeBar": False})
    spans = []
    for name, curve in curves.items():
        span = curve.readable_range()
        label = PROBES[name].label.lower()
        spans.append(f"{label} {setting(name, span[0])} to {setting(name, span[1])}" if span else
                     f"{label}: not even unchanged")
    total_ms = sum(c.seconds for c in curves.values()) * 1000
    st.markdown(f"With the other sliders where they are, the model still answers **{classes[cls]}** for: "
                + "; ".join(spans) + f". (Hollow points: another answer. {total_ms:.0f} ms for all five curves.)")
    shifts = trained_with_shifts(key)
    note = {True: "This model was trained with random shifts of ±2 px (data augmentation), so small moves are "
                  "part of what it has seen.",
            False: "This model was trained without shifted copies (augmentation off), so it only ever saw "
                   "centred digits.",
            None: "Whether this model was trained with shifted digits is not recorded."}[shifts]
    st.caption("Why it tolerates some shift: convolutions move their feature maps along with the digit, and "
               "each 2×2 max-pool keeps the strongest value of a block, so a pixel or two of movement changes "
               "little; but fc1 has separate weights for each of the 4×4 pooled positions, so a digit moved "
               f"further lands where the classifier never saw strokes. {note} Rotation, size and stroke width "
               "are not built in at all: the model copes only as far as MNIST's own handwriting varied.")


# -- the page --------------------------------------------------------------------------------------
st.title("Explain")
st.markdown("Three ways to question the network about one image: how little must change for it to answer "
            "something else, which pixels each explanation method blames, and how far the digit can move "
            "before the network stops reading it; and, in the last tab, what one unit of the network responds "
            "to most.")

ds = state.dataset()
classes = ds.classes
top = st.columns([1, 1], gap="large")
with top[0]:
    model, model_label = state.model_picker("Model", help="The bundled pretrained model, or one of your runs.")
    if model is None:
        st.info(model_label)
        nav.link(nav.TRAIN, "Train a model", icon=":material/model_training:")
        st.stop()
    x, description, true_class = pick_input(ds)
if x is None:
    st.stop()
model_key = state.selected_model_key()
x = x.detach().cpu().float()
input_digest = digest(x)
first = reading(model, x)
with top[1]:
    c1, c2 = st.columns([1, 1.3])
    with c1:
        show_chart(plots.digit_image(x, height=220), key="explain_input_fig", config={"displayModeBar": False},
                   alt=f"The input, {description}: 28×28 grey pixels, white ink on black.")
    with c2:
        said = int(first.argmax())
        truth = f" · true class **{classes[true_class]}**" if true_class is not None else ""
        st.markdown(f"Input: {description}{truth}")
        st.markdown(f"## The model says {classes[said]}")
        st.markdown(f"with {first[said]:.1%} confidence  \n{model_label}")

attack_tab, bench_tab, probe_tab, unit_tab = st.tabs(["Attack", "Attribution bench", "Invariance probe",
                                                     "What excites a unit"])
with attack_tab:
    st.fragment(attack_section)(model_key, x, input_digest, classes)
with bench_tab:
    st.fragment(attribution_section)(model_key, x, input_digest, classes)
with probe_tab:
    st.fragment(invariance_section)(model_key, x, input_digest, classes)
with unit_tab:
    st.fragment(maximise_section)(model_key, classes)
