"""Links between pages that also work when a page runs on its own (tests, `streamlit run page.py`)."""
from __future__ import annotations

import streamlit as st

# Page files, for st.page_link / st.switch_page. app.py registers exactly these.
HOME = "pages/home.py"
TRAIN = "pages/train.py"
DRAW = "pages/draw.py"
HANDWRITING = "pages/handwriting.py"
INSIDE = "pages/inside.py"
EXPLAIN = "pages/explain.py"
RESULTS = "pages/results.py"
REPLAY = "pages/replay.py"
DATA = "pages/data.py"
LEARN_DIR = "pages/learn"
TEACHER = "pages/teacher.py"

# (file, title, material icon) of every page, in menu order. app.py registers exactly these.
DASHBOARD_PAGES = [
    (HOME, "Home", ":material/home:"),
    (TRAIN, "Train", ":material/model_training:"),
    (DRAW, "Draw", ":material/draw:"),
    (HANDWRITING, "Your handwriting", ":material/edit_note:"),
    (INSIDE, "Inside the network", ":material/biotech:"),
    (EXPLAIN, "Explain", ":material/psychology:"),
    (RESULTS, "Results", ":material/analytics:"),
    (REPLAY, "Replay training", ":material/replay:"),
    (DATA, "Data", ":material/dataset:"),
]
TEACHER_PAGES = [(TEACHER, "Class overview", ":material/groups:")]
LESSON_PAGES = [
    (f"{LEARN_DIR}/01_tensors.py", "1 · Images as tensors", ":material/grid_on:"),
    (f"{LEARN_DIR}/02_fully_connected.py", "2 · Fully-connected layer", ":material/hub:"),
    (f"{LEARN_DIR}/03_convolution.py", "3 · Convolution", ":material/filter_center_focus:"),
    (f"{LEARN_DIR}/04_pooling.py", "4 · Pooling", ":material/compress:"),
    (f"{LEARN_DIR}/05_activations.py", "5 · Activations", ":material/show_chart:"),
    (f"{LEARN_DIR}/06_losses.py", "6 · Losses", ":material/trending_down:"),
    (f"{LEARN_DIR}/07_gradient_descent.py", "7 · Gradient descent", ":material/landscape:"),
    (f"{LEARN_DIR}/08_adam.py", "8 · Adam step by step", ":material/table:"),
    (f"{LEARN_DIR}/09_backprop.py", "9 · Backpropagation", ":material/undo:"),
    (f"{LEARN_DIR}/10_dropout.py", "10 · Dropout", ":material/blur_on:"),
    (f"{LEARN_DIR}/11_batch_norm.py", "11 · Batch normalization", ":material/equalizer:"),
    (f"{LEARN_DIR}/12_overfitting.py", "12 · Overfitting", ":material/warning:"),
    (f"{LEARN_DIR}/13_mnist.py", "13 · The MNIST dataset", ":material/pin:"),
    (f"{LEARN_DIR}/14_layer_by_layer.py", "14 · SimpleCNN layer by layer", ":material/layers:"),
    (f"{LEARN_DIR}/15_training_step.py", "15 · One real training step", ":material/play_arrow:"),
    (f"{LEARN_DIR}/16_minibatch_noise.py", "16 · Mini-batches and gradient noise", ":material/scatter_plot:"),
]


def link(page: str, label: str, icon: str | None = None) -> None:
    """st.page_link when the page is registered; plain text otherwise (page run on its own)."""
    try:
        st.page_link(page, label=label, icon=icon)
    except Exception:  # StreamlitAPIException / KeyError when no navigation is registered
        st.markdown(f"{icon + ' ' if icon else ''}**{label}** (`{page}`)")


MENU_KEY = "app_menu"  # the sidebar menu's container: its element carries the class "st-key-app_menu"


def sidebar_menu(sections: dict[str, list], query_params: dict[str, str] | None = None) -> None:
    """The app's page menu at the top of the sidebar: a bold section name, then a st.page_link per page.

    It stands in for the menu st.navigation draws itself (app.py hides that one): Streamlit's menu puts
    its section headers and "View more" button straight inside a <ul> beside the <li> items, so the
    list is malformed for screen readers (axe rules "list" and "listitem", both serious). Links are
    client-side like Streamlit's own: the session and its runs stay.
    """
    with st.sidebar.container(key=MENU_KEY):
        for section, pages in sections.items():
            st.markdown(f"**{section}**")
            for page in pages:
                st.page_link(page, label=page.title, icon=page.icon, query_params=query_params)
