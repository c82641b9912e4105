import os
import pickle

import pytest
import torch

from simplecnn.checkpoints import checkpoint_bytes, load_checkpoint, save_checkpoint
from simplecnn.model import SimpleCNN


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = SimpleCNN(dropout1=0.3, batch_norm=True)
    path = save_checkpoint(tmp_path / "a.pt", model, config={"learning_rate": 0.01},
                           metrics={"test_accuracy": 99.1}, history={"status": "finished"})
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert meta["config"] == {"learning_rate": 0.01} and meta["metrics"]["test_accuracy"] == 99.1
    assert loaded.dropout1.p == 0.3
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temp file left behind


def test_loads_from_bytes_and_without_batch_norm():
    model = SimpleCNN(batch_norm=False)
    loaded, _ = load_checkpoint(checkpoint_bytes(model))
    assert not loaded.batch_norm and loaded.num_parameters() == model.num_parameters()


def test_bare_state_dict_from_the_guide_layout_loads(tmp_path):
    model = SimpleCNN()
    torch.save(model.state_dict(), tmp_path / "guide.pt")
    loaded, meta = load_checkpoint(tmp_path / "guide.pt")
    assert meta["format"] == "state_dict"
    assert torch.equal(loaded.fc2.weight, model.fc2.weight)


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = RunsCode()
    evil.marker = marker
    RunsCode.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": evil}, path)
    with pytest.raises(ValueError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = pickle.dumps(evil)
    with pytest.raises(ValueError):
        load_checkpoint(raw)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"PK\x03\x04 broken zip"])
def test_garbage_is_a_value_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        load_checkpoint(path)


def test_truncated_checkpoint_is_a_value_error():
    data = checkpoint_bytes(SimpleCNN())
    with pytest.raises(ValueError):
        load_checkpoint(data[: len(data) // 2])


def test_other_architecture_is_a_value_error(tmp_path):
    other = torch.nn.Sequential(torch.nn.Linear(784, 10))
    torch.save(other.state_dict(), tmp_path / "mlp.pt")
    with pytest.raises(ValueError, match="different architecture|no model weights"):
        load_checkpoint(tmp_path / "mlp.pt")
    bigger = SimpleCNN()
    state = bigger.state_dict()
    state["fc1.weight"] = torch.zeros(256, 1024)
    torch.save(state, tmp_path / "resized.pt")
    with pytest.raises(ValueError, match="different architecture"):
        load_checkpoint(tmp_path / "resized.pt")


def test_missing_file_and_huge_bytes():
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint("/nonexistent/model.pt")
    with pytest.raises(ValueError, match="too large"):
        load_checkpoint(b"\0" * (11 * 1024 * 1024))


def test_bundled_model_reaches_its_accuracy(bundled_path, mnist):
    from simplecnn.evaluation import evaluate_split
    model, meta = load_checkpoint(bundled_path)
    result = evaluate_split(model, "test", mnist)
    assert result.accuracy >= 99.4
    assert meta["metrics"]["test_accuracy"] == pytest.approx(result.accuracy, abs=0.02)
