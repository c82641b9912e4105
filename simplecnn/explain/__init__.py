"""Explain a SimpleCNN's answers, on any image, from a notebook or the dashboard's Explain page.

* `attacks`: FGSM and PGD (Captum) within an ε budget in pixel space, the smallest targeted change
  found ("make it a 7"), and accuracy under attack over a range of ε.
* `attribution`: Saliency, Integrated Gradients, Grad-CAM on conv2 and Occlusion (Captum) for one image
  and class, and Adebayo et al.'s sanity check (weights randomised layer by layer from the top).
* `invariance`: shift, rotate, scale and thicken a digit; the model's confidence along each range
  from one batched forward pass.
* `maximise`: activation maximisation of a class logit, a conv1/conv2 channel or an fc1 unit (a
  generator that reports every few steps, with jitter, blur and L2 decay), and the test images that
  excite the same unit most.

    from simplecnn.explain import attacks, attribution, invariance, maximise
    result = attacks.attack(model, image, label=7, epsilon=0.1, method="PGD")

No Streamlit here. Every function runs the model in eval mode and restores its mode afterwards.
"""
from . import attacks, attribution, invariance, maximise

__all__ = ["attacks", "attribution", "invariance", "maximise"]
