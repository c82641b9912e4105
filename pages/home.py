"""Home: what this is, the network drawn with its real shapes and parameter counts, where to go."""
from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from dashboard import nav, state
from simplecnn.model import SimpleCNN


@st.cache_resource
def layer_rows() -> list:
    """The layer table of a fresh SimpleCNN, measured by a real forward pass (shared, read-only)."""
    return SimpleCNN().layer_table()


BLOCKS = [("Input", ("input",), "#f3f4f6"),
          ("Conv block 1", ("conv1", "batch1", "relu1", "max1", "dropout1"), "#dbeafe"),
          ("Conv block 2", ("conv2", "batch2", "relu2", "max2", "dropout2"), "#ede9fe"),
          ("Classifier", ("flatten", "fc1", "relu3", "fc2"), "#dcfce7")]


def diagram(rows) -> str:
    """Graphviz DOT of the network: one box per block, one line per stage with its shape and parameters."""
    by_name = {r.name: r for r in rows}
    nodes = []
    for i, (title, names, fill) in enumerate(BLOCKS):
        lines = "".join(
            f"<TR><TD ALIGN='LEFT'>{n}</TD><TD ALIGN='LEFT'>{html.escape(by_name[n].kind)}</TD>"
            f"<TD ALIGN='RIGHT'>{'×'.join(map(str, by_name[n].output_shape[1:]))}</TD>"
            f"<TD ALIGN='RIGHT'>{by_name[n].parameters:,}</TD></TR>" for n in names)
        nodes.append(f"b{i} [label=<<TABLE BORDER='0' CELLSPACING='2'><TR><TD COLSPAN='4'><B>{title}</B></TD></TR>"
                     f"{lines}</TABLE>>, fillcolor=\"{fill}\"];")
    edges = " -> ".join(f"b{i}" for i in range(len(BLOCKS)))
    return ("digraph { rankdir=LR; bgcolor=transparent; edge [color=\"#888888\"];"  # light or dark page
            " node [shape=box, style=\"rounded,filled\", fontname=Helvetica, fontsize=11];"
            + "".join(nodes) + edges
            + ' -> out; out [label="softmax\\n10 class\\nprobabilities", fillcolor="#fef3c7"]; }')


st.title("SimpleCNN: learn how a convolutional network sees digits")
st.markdown(
    "This dashboard trains a real convolutional neural network, **SimpleCNN**, on handwritten digits while "
    "you watch. You choose the settings, see the loss fall, draw your own digits for it to read, and open "
    "it up to see what each layer computes. The **Learn** pages explain every idea behind it with a widget "
    "that computes on real numbers.")

rows = layer_rows()
st.header("The network")
st.graphviz_chart(diagram(rows), width="stretch")
table = pd.DataFrame([{"stage": r.name, "layer": r.kind, "output shape": str(r.output_shape),
                       "parameters": r.parameters} for r in rows])
c1, c2 = st.columns([3, 2])
with c1:
    st.dataframe(table, hide_index=True, width="stretch", height=38 + 35 * len(table))
with c2:
    total = sum(r.parameters for r in rows)
    st.metric("Parameters", f"{total:,}")
    fc1 = next(r for r in rows if r.name == "fc1")
    st.caption("Counted from the real PyTorch module; shapes come from a forward pass of one 28×28 image. "
               f"fc1 alone holds {100 * fc1.parameters / total:.0f} % of the weights: "
               f"{fc1.output_shape[1]} outputs × 1,024 inputs + {fc1.output_shape[1]} biases.")
    meta = state.bundled_model_meta()
    acc = (meta.get("metrics") or {}).get("test_accuracy")
    if acc:
        st.metric("Bundled model, test accuracy", f"{acc:.2f}%", help="On the 10,000 MNIST test images")

st.header("A path through the app")
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**1. Draw** a digit and see the bundled model read it.")
    nav.link(nav.DRAW, "Draw a digit", ":material/draw:")
    st.markdown("**2. Look inside**: the filters and feature maps your digit lights up.")
    nav.link(nav.INSIDE, "Inside the network", ":material/biotech:")
with c2:
    st.markdown("**3. Train** your own network; change the learning rate or dropout and compare runs.")
    nav.link(nav.TRAIN, "Train", ":material/model_training:")
    st.markdown("**4. Results**: where your model goes wrong, and how sure it was.")
    nav.link(nav.RESULTS, "Results", ":material/analytics:")
with c3:
    st.markdown("**5. Learn** the ideas one by one, each with something to play with.")
    nav.link(nav.LESSON_PAGES[0][0], "Start with lesson 1", ":material/school:")
    st.markdown("**6. Data**: browse the 70,000 MNIST digits.")
    nav.link(nav.DATA, "Data", ":material/dataset:")
