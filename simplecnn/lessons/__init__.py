"""The math behind the interactive lessons: plain torch/numpy functions that the lesson pages call."""
