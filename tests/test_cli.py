import json
import subprocess
import sys

from tests.conftest import ROOT


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "simplecnn", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_train_then_evaluate_json(tmp_path):
    out = tmp_path / "tiny.pt"
    train = run_cli("train", "--epochs", "1", "--subset", "1500", "--batch-size", "64", "--output", str(out))
    assert train.returncode == 0, train.stderr
    assert "epoch" in train.stdout and "Test accuracy" in train.stdout and out.is_file()
    assert "img/s" in train.stderr  # the progress bar
    evaluate = run_cli("evaluate", "--checkpoint", str(out), "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    report = json.loads(evaluate.stdout)
    assert 50 < report["test_accuracy"] <= 100 and report["test_loss"] > 0
    assert report["num_test_images"] == 10000


def test_help_states_defaults():
    text = run_cli("train", "--help").stdout
    assert "default 0.001" in text and "default 10" in text and "default adam" in text


def test_bad_input_exits_with_a_message(tmp_path):
    bad = run_cli("train", "--epochs", "0")
    assert bad.returncode == 2 and "epochs" in bad.stderr.lower()
    garbage = tmp_path / "x.pt"
    garbage.write_bytes(b"nope")
    result = run_cli("evaluate", "--checkpoint", str(garbage))
    assert result.returncode == 2 and "error:" in result.stderr
