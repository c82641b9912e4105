"""Data: browse the images the network learns from, count them per class, and see each class's mean.

The dataset chosen here (MNIST, or Fashion-MNIST when it is installed) is stored in
st.session_state["dataset_name"]; the whole app follows it through dashboard.state.dataset().
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from dashboard.charts import show_chart
from dashboard import state
from simplecnn import data as sdata
from simplecnn import plots

PAGE_SIZE = 40  # images per page of the browser
GRID_COLUMNS = 10
ALL = -1  # class-selector value meaning "every class"
DATASET_LABELS = {"mnist": "MNIST (handwritten digits)", "fashion-mnist": "Fashion-MNIST (clothing)"}
CHOICE_KEY = "data_dataset"  # the switch's own widget key; "dataset_name" is the app-wide value


@st.cache_data(show_spinner="Averaging the images of each class…")
def class_means(name: str) -> np.ndarray:
    """(10, 28, 28) float32: the mean training image of each class, pixels in [0, 1]."""
    ds = state.shared_dataset(name)
    images = ds.train_images.reshape(len(ds.train_images), -1).float()  # (60000, 784)
    sums = torch.zeros(ds.num_classes, images.shape[1]).index_add_(0, ds.train_labels, images)  # (10, 784)
    counts = torch.bincount(ds.train_labels, minlength=ds.num_classes).clamp_min(1)
    return (sums / counts[:, None] / 255.0).reshape(-1, 28, 28).numpy()


@st.cache_data(show_spinner=False)
def nearest_mean_accuracy(name: str) -> float:
    """Percent of test images whose closest class mean (Euclidean distance) is their own class."""
    ds = state.shared_dataset(name)
    means = torch.from_numpy(class_means(name)).reshape(ds.num_classes, -1)  # (10, 784)
    test = ds.test_images.reshape(len(ds.test_images), -1).float() / 255.0  # (10000, 784)
    predicted = torch.cdist(test, means).argmin(dim=1)  # (10000,)
    return 100.0 * float((predicted == ds.test_labels).float().mean())


@st.cache_data(show_spinner=False)
def pixel_statistics(name: str) -> tuple[float, float]:
    """(mean, standard deviation) of all training pixels in [0, 1], as used for normalisation."""
    pixels = state.shared_dataset(name).train_images.float().div_(255.0)
    return float(pixels.mean()), float(pixels.std())


def class_counts(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    return torch.bincount(labels, minlength=num_classes).numpy()


def browse_indices(labels: torch.Tensor, cls: int, shuffle: bool, seed: int) -> torch.Tensor:
    """Indices into the split of the chosen class (or all), in dataset order or shuffled by `seed`."""
    indices = torch.arange(len(labels)) if cls == ALL else (labels == cls).nonzero().flatten()
    if shuffle:
        order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
        indices = indices[order]
    return indices


def _first_page() -> None:
    st.session_state["data_page"] = 1


def _on_dataset_switch() -> None:
    st.session_state["dataset_name"] = st.session_state[CHOICE_KEY]


def dataset_switch() -> None:
    """MNIST / Fashion-MNIST; the choice goes to session_state["dataset_name"] for the whole app."""
    fashion = sdata.fashion_available()
    st.session_state[CHOICE_KEY] = state.dataset_name()
    st.radio("Dataset", list(sdata.DATASETS), key=CHOICE_KEY, format_func=DATASET_LABELS.get,
             horizontal=True, disabled=not fashion, on_change=_on_dataset_switch,
             help="Every page of the app (training, drawing, results) follows this choice.")
    if not fashion:
        st.info("Fashion-MNIST is not installed on this machine, so only MNIST is available. To add it, "
                "install Debian's package: `apt-get install dataset-fashion-mnist` (it puts the files in "
                f"`{sdata.FASHION_SYSTEM_DIR}`), or copy its four `.gz` files into "
                f"`{sdata.data_dir() / 'fashion-mnist'}`, then reload this page.", icon=":material/info:")


def balance_note(counts: np.ndarray) -> str:
    """Whether plain accuracy is a fair summary for this class balance."""
    if counts.min() >= 0.7 * counts.max():
        return "Close enough to even that plain accuracy is a fair summary."
    return ("Uneven: a model can score well by favouring the big classes, so look at per-class accuracy "
            "too.")


def show_balance(ds: sdata.Dataset) -> None:
    st.header("Class balance")
    cols = st.columns(2)
    for col, split, labels in ((cols[0], "train", ds.train_labels), (cols[1], "test", ds.test_labels)):
        counts = class_counts(labels, ds.num_classes)
        with col:
            show_chart(plots.bar_per_class(counts, ds.classes, title=f"{split.capitalize()} set: "
                                                f"{len(labels):,} images", y_title="Images",
                                                value_format=",.0f", reference=len(labels) / ds.num_classes,
                                                reference_label="even share"),
                            key=f"data_balance_{split}", config={"displayModeBar": False})
            if counts.min() == counts.max():
                st.caption(f"Every class has exactly {counts.max():,} images: perfectly balanced.")
            else:
                st.caption(f"Smallest class: {ds.classes[counts.argmin()]} ({counts.min():,}), largest: "
                           f"{ds.classes[counts.argmax()]} ({counts.max():,}). {balance_note(counts)}")


def show_means(ds: sdata.Dataset) -> None:
    st.header("The mean image of each class")
    means = class_means(ds.name)
    show_chart(plots.image_grid(means, titles=list(ds.classes), cols=GRID_COLUMNS, shared_scale=False,
                                     height=150), key="data_means", config={"displayModeBar": False},
               alt=f"The mean training image of each of the {len(ds.classes)} classes, 28×28 each, titled "
                   f"{', '.join(map(str, ds.classes))}: bright where most images of the class have ink.")
    mean, std = pixel_statistics(ds.name)
    st.caption("Each picture averages every training image of one class: bright where most of them have ink, "
               "blurred where people write in different ways. Giving each test image the class of the nearest "
               f"of these ten averages is right for **{nearest_mean_accuracy(ds.name):.1f}%** of the test set"
               f"{cnn_comparison(ds.name)}. Over all training pixels: mean {mean:.4f}, standard deviation "
               f"{std:.4f} (the numbers often used to normalise the input).")


def cnn_comparison(name: str) -> str:
    """", while the bundled SimpleCNN gets 99.x%" when its measured test accuracy is known."""
    accuracy = (state.bundled_model_meta().get("metrics") or {}).get("test_accuracy")
    if name != "mnist" or not accuracy:
        return ""
    return f", while the bundled SimpleCNN, which learns local shapes instead, gets {accuracy:.2f}%"


def show_browser(ds: sdata.Dataset) -> None:
    st.header("Browse the images")
    c1, c2, c3, c4 = st.columns([1.2, 2, 1, 1])
    with c1:
        split = st.radio("Split", ["train", "test"], key="data_split", horizontal=True, on_change=_first_page,
                         format_func=lambda s: f"{s} ({len(ds.train_labels if s == 'train' else ds.test_labels):,})")
    with c2:
        cls = st.selectbox("Class", [ALL] + list(range(ds.num_classes)), key="data_class", on_change=_first_page,
                           format_func=lambda c: "All classes" if c == ALL else f"{c}: {ds.classes[c]}")
    with c3:
        shuffle = st.toggle("Shuffle", key="data_shuffle", help="Show the images in a random order.",
                            on_change=_first_page)
        seed = st.number_input("Seed", 0, 10_000, key="data_seed", disabled=not shuffle, on_change=_first_page)
    images, labels = (ds.train_images, ds.train_labels) if split == "train" else (ds.test_images, ds.test_labels)
    indices = browse_indices(labels, cls, shuffle, int(seed))
    pages = max(1, -(-len(indices) // PAGE_SIZE))
    if st.session_state.get("data_page", 1) > pages:  # fewer pages than before (e.g. another class)
        st.session_state["data_page"] = pages
    with c4:
        page = int(st.number_input(f"Page (of {pages:,})", 1, pages, key="data_page"))
    shown = indices[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    titles = [f"#{i}" if cls != ALL else f"#{i}: {ds.classes[labels[i]]}" for i in shown.tolist()]
    rows = max(1, -(-len(shown) // GRID_COLUMNS))
    show_chart(plots.image_grid(images[shown].float().div(255.0), titles=titles, cols=GRID_COLUMNS,
                                     shared_scale=True, show_scale=False, height=20 + rows * 100),
                    key="data_grid", config={"displayModeBar": False},
               alt=f"{len(shown)} {split} images, 28×28 grey pixels each, titled by their index"
                   + ("" if cls != ALL else " and class") + f", of {'all classes' if cls == ALL else 'class ' + str(ds.classes[cls])}.")
    which = "all classes" if cls == ALL else f"class {ds.classes[cls]}"
    st.caption(f"{split.capitalize()} images of {which}: {len(indices):,} in all; showing "
               f"{(page - 1) * PAGE_SIZE + 1:,}–{(page - 1) * PAGE_SIZE + len(shown):,}. The number above each "
               "image is its index in the split. Hover a pixel to read its value (0 = black, 1 = full ink).")


st.title("The data")
st.markdown("A network only knows what its training images show it. Here you can look at them: how many there "
            "are of each class, what a typical one looks like, and any image you like.")
dataset_switch()
dataset = state.dataset()
st.caption(f"{dataset.name}: {len(dataset.train_labels):,} training and {len(dataset.test_labels):,} test images, "
           f"each 28×28 grey pixels, {dataset.num_classes} classes.")
show_browser(dataset)
show_balance(dataset)
show_means(dataset)
