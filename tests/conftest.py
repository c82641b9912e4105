"""Shared fixtures: the real MNIST in memory (loaded once per test session)."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Runs that tests make (through the app's pages or the classroom) never land in the repository's runs/.
os.environ.setdefault("SIMPLECNN_RUNS_DIR", tempfile.mkdtemp(prefix="simplecnn-test-runs-"))


@pytest.fixture(scope="session")
def mnist():
    from simplecnn.data import load_dataset
    return load_dataset("mnist")


@pytest.fixture(scope="session")
def bundled_path():
    path = ROOT / "models" / "simplecnn_mnist.pt"
    if not path.is_file():
        pytest.skip("models/simplecnn_mnist.pt is absent (make it with the README's training command)")
    return path
