"""Layer health (simplecnn.health): the recorded numbers against computations done separately (a step
repeated by hand on a copy of the model, a forward pass written out with torch.nn.functional, numpy's
histogram), its bounds, its hooks, resuming, and short trainings that show what the Train page says
about a too-high learning rate, batch norm off and dropout 0.9."""
from __future__ import annotations

import copy
import json
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simplecnn import health
from simplecnn.data import to_float
from simplecnn.health import (GRAD_BINS_PER_DECADE, LAYERS, RELUS, HealthRecorder, LayerHealth, attach_health,
                              binned_counts, grad_edges, read_health, recorder_for, weight_edges)
from simplecnn.model import SimpleCNN
from simplecnn.recorders import RECORDER_FACTORIES
from simplecnn.training import StopTraining, TrainConfig, Trainer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads spin against each other (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def numpy_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    """The same binning as binned_counts, by numpy: below, np.histogram's bins, above."""
    values = np.asarray(values, dtype=np.float64).ravel()
    inside = values[(values >= edges[0]) & (values <= edges[-1])]
    counts, _ = np.histogram(inside, bins=np.asarray(edges))
    return [int((values < edges[0]).sum()), *counts.tolist(), int((values > edges[-1]).sum())]


def assert_counts_close(got: list[int], want: list[int], slack: int = 2) -> None:
    """Equal totals; a value within float32 rounding of an edge may land in the neighbouring bin."""
    assert len(got) == len(want) and sum(got) == sum(want)
    assert max(abs(a - b) for a, b in zip(got, want)) <= slack, (got, want)


def batch(mnist, n=64, start=0):
    x = to_float(mnist.train_images[start:start + n])  # (n, 1, 28, 28)
    return x, mnist.train_labels[start:start + n]


def by_hand_forward(model: SimpleCNN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ReLU outputs of SimpleCNN (dropout 0, batch norm off) written out with torch.nn.functional."""
    a1 = F.relu(F.conv2d(x, model.conv1.weight, model.conv1.bias))  # (N, 32, 24, 24)
    a2 = F.relu(F.conv2d(F.max_pool2d(a1, 2), model.conv2.weight, model.conv2.bias))  # (N, 64, 8, 8)
    a3 = F.relu(F.linear(F.max_pool2d(a2, 2).flatten(1), model.fc1.weight, model.fc1.bias))  # (N, 512)
    return {"relu1": a1, "relu2": a2, "relu3": a3}


# -- binning ----------------------------------------------------------------------------------------------
def test_binned_counts_agree_with_numpy_histogram():
    gen = torch.Generator().manual_seed(0)
    edges = weight_edges(1024)
    values = torch.randn(200_000, generator=gen) * 0.08  # wider than ±4/32 = ±0.125: both outer bins fill
    got = binned_counts(values, edges)
    assert got[0] > 1000 and got[-1] > 1000
    assert_counts_close(got, numpy_counts(values.numpy(), edges))
    sizes = health.grad_sizes(torch.cat([torch.zeros(10), torch.full((5,), 3.0), torch.logspace(-12, -1, 1000)]))
    got = binned_counts(sizes, grad_edges())
    assert got[0] == 10 + 182 and got[-1] == 5  # zeros and |g| < 1e-10 at the bottom, |g| > 1 at the top
    assert_counts_close(got, numpy_counts(sizes.numpy(), grad_edges()))


def test_bins_are_fixed_by_the_layer_not_by_its_values():
    assert weight_edges(25)[-1] == pytest.approx(4 / 5) and weight_edges(25)[0] == pytest.approx(-4 / 5)
    assert len(weight_edges(800)) == health.WEIGHT_BINS + 1
    edges = grad_edges()
    assert edges[0] == -10 and edges[-1] == 0 and np.allclose(np.diff(edges), 1 / GRAD_BINS_PER_DECADE)


# -- one sampled step against the same step done by hand ---------------------------------------------------
def one_recorded_step(mnist, optimizer_name="adam", lr=1e-3, dead_biases=False):
    torch.manual_seed(0)
    model = SimpleCNN(dropout1=0.0, dropout2=0.0, batch_norm=False)
    if dead_biases:  # a quarter of conv1's channels and of fc1's units can never fire
        with torch.no_grad():
            model.conv1.bias[:8] = -1e3
            model.fc1.bias[:128] = -1e3
    make = {"adam": lambda p: torch.optim.Adam(p, lr=lr), "sgd": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9)}
    optimizer = make[optimizer_name](model.parameters())
    x, y = batch(mnist)
    # Warm the optimizer up by one unrecorded step, so its state (moments, momentum) matters below.
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.zero_grad()
    twin = copy.deepcopy(model)
    twin_opt = make[optimizer_name](twin.parameters())
    twin_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    x, y = batch(mnist, start=64)
    with LayerHealth(model, optimizer, every=1, step=1) as recorded:
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    # The same step, by hand, on the twin, with no hooks.
    before = {name: getattr(twin, name).weight.detach().clone().double() for name in LAYERS}
    relus = by_hand_forward(twin, x)
    F.cross_entropy(twin(x), y).backward()
    grads = {name: getattr(twin, name).weight.grad.detach().clone() for name in LAYERS}
    twin_opt.step()
    return recorded, twin, before, relus, grads


@pytest.mark.parametrize("optimizer_name, lr", [("adam", 1e-3), ("sgd", 0.05)])
def test_update_ratio_is_the_step_repeated_by_hand(mnist, optimizer_name, lr):
    recorded, twin, before, _, _ = one_recorded_step(mnist, optimizer_name, lr)
    sample = recorded.samples[-1]
    assert sample["step"] == 2 and len(recorded.samples) == 1
    for name in LAYERS:
        after = getattr(twin, name).weight.detach().double()
        want = ((after - before[name]).norm() / before[name].norm()).item()
        assert sample["update_ratio"][name] == pytest.approx(want, rel=1e-4), name


def test_histograms_are_the_twins_weights_and_gradients_binned_by_numpy(mnist):
    recorded, twin, _, _, grads = one_recorded_step(mnist)
    sample = recorded.samples[-1]
    for name in LAYERS:
        weights = getattr(twin, name).weight.detach().numpy()
        assert_counts_close(sample["weights"][name], numpy_counts(weights, recorded.weight_edges[name]))
        with np.errstate(divide="ignore"):
            sizes = np.log10(np.abs(grads[name].numpy().astype(np.float64)))
        assert_counts_close(sample["grads"][name], numpy_counts(sizes, grad_edges()))
        assert sum(sample["weights"][name]) == weights.size


def test_dead_relu_fraction_is_a_direct_forward_pass(mnist):
    recorded, _, _, relus, _ = one_recorded_step(mnist, dead_biases=True)
    dead = recorded.samples[-1]["dead_relu"]
    for name, out in relus.items():
        fired = (out > 0).any(dim=0)  # (C, H, W) or (F,)
        units = fired.flatten(1).any(dim=1) if fired.dim() > 1 else fired
        assert dead[name] == pytest.approx(1 - units.float().mean().item()), name
    # The biases set to -1000 guarantee at least a quarter dead where they were set.
    assert dead["relu1"] >= 0.25 and dead["relu3"] >= 0.25


# -- schedule, hooks, bounds -------------------------------------------------------------------------------
def test_samples_on_step_one_and_every_nth_training_step_only(mnist):
    torch.manual_seed(0)
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch(mnist)
    with LayerHealth(model, optimizer, every=5) as recorded:
        for step in range(1, 24):
            model.train()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
            model.eval()
            with torch.no_grad():  # a validation pass between steps is not a training step
                model(x)
                assert not any(getattr(model, name)._forward_hooks for name in RELUS)
    assert [s["step"] for s in recorded.samples] == [1, 5, 10, 15, 20]
    assert recorded.step == 23


def hook_counts(model, optimizer) -> int:
    return (len(model._forward_pre_hooks) + sum(len(getattr(model, r)._forward_hooks) for r in RELUS)
            + len(optimizer._optimizer_step_pre_hooks) + len(optimizer._optimizer_step_post_hooks))


def test_hooks_are_removed_on_close_even_after_an_error(mnist):
    model = SimpleCNN()
    optimizer = torch.optim.Adam(model.parameters())
    assert hook_counts(model, optimizer) == 0
    x, _ = batch(mnist)
    with pytest.raises(RuntimeError, match="boom"):
        with LayerHealth(model, optimizer, every=1) as recorded:
            assert hook_counts(model, optimizer) == 3
            model(x)  # a sampled forward: the three ReLU hooks are on now
            assert hook_counts(model, optimizer) == 6
            raise RuntimeError("boom")
    assert hook_counts(model, optimizer) == 0 and recorded.closed
    recorded.close()  # twice is harmless
    model(x).sum().backward()
    optimizer.step()
    assert recorded.samples == []  # nothing is recorded after close


def test_samples_are_bounded_and_thinned_evenly(mnist):
    torch.manual_seed(0)
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = batch(mnist, n=16)
    with LayerHealth(model, optimizer, every=1, max_samples=6) as recorded:
        for _ in range(40):
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
            assert len(recorded.samples) <= 6
    steps = [s["step"] for s in recorded.samples]
    assert steps[0] == 1 and recorded.every == 8 and steps == [1, 8, 16, 24, 32, 40]
    assert recorded.recorded > len(steps)


def test_bad_settings_are_refused(monkeypatch):
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for every in (0, -1, 2.5, health.MAX_EVERY + 1):
        with pytest.raises(ValueError, match="every"):
            LayerHealth(model, optimizer, every=every)
    with pytest.raises(ValueError, match="max_samples"):
        LayerHealth(model, optimizer, max_samples=1)
    assert hook_counts(model, optimizer) == 0
    monkeypatch.setenv(health.EVERY_ENV, "-3")
    with pytest.raises(ValueError, match=health.EVERY_ENV):
        health.every_from_env()


# -- the training-process recorder ------------------------------------------------------------------------
class Run:  # what recorder_for is given: an object with the run's folder as .path
    def __init__(self, path):
        self.path = path


def test_recorder_is_registered_and_can_be_turned_off(tmp_path, mnist, monkeypatch):
    assert "simplecnn.health:recorder_for" in RECORDER_FACTORIES
    trainer = Trainer(TrainConfig(epochs=1, subset=100, seed=0), dataset=mnist)
    monkeypatch.setenv(health.EVERY_ENV, "0")
    assert recorder_for(trainer, Run(tmp_path)) is None
    monkeypatch.setenv(health.EVERY_ENV, "7")
    recorder = recorder_for(trainer, Run(tmp_path))
    assert recorder.health.every == 7
    recorder.close(trainer)


def stop_at(step: int):
    def callback(event):
        if getattr(event, "step", 0) >= step:
            raise StopTraining()
    return callback


def test_recorder_writes_health_json_and_resumes_from_the_saved_position(tmp_path, mnist):
    config = TrainConfig(epochs=2, subset=1000, seed=0, log_every=2)  # 13 batches per epoch
    first = Trainer(config, dataset=mnist)
    recorder = HealthRecorder(first, tmp_path, every=3)
    saved = {}

    def save_at_8(event):
        recorder.on_event(first, event)
        if getattr(event, "step", None) == 8:
            saved["state"] = copy.deepcopy(first.state_dict())  # the resume point on disk
    first.callbacks += [save_at_8, stop_at(16)]
    first.fit()
    recorder.close(first)
    recorder.close(first)  # idempotent
    stored = read_health(tmp_path)
    assert [s["step"] for s in stored["samples"]] == [1, 3, 6, 9, 12, 15]
    assert stored["batches_per_epoch"] == 13 and stored["every"] == 3
    assert json.loads((tmp_path / "health.json").read_text())["layers"] == list(LAYERS)
    # The training process dies; the run resumes from the save at step 8: samples after it are dropped.
    second = Trainer(config, dataset=mnist)
    second.load_state_dict(saved["state"])
    recorder = HealthRecorder(second, tmp_path, every=3)
    second.callbacks.append(lambda event: recorder.on_event(second, event))
    second.fit()
    recorder.close(second)
    steps = [s["step"] for s in read_health(tmp_path)["samples"]]
    assert steps == [1, 3, 6, 9, 12, 15, 18, 21, 24]
    assert hook_counts(second.model, second.optimizer) == 0


def test_a_damaged_health_file_is_replaced_not_fatal(tmp_path, mnist):
    (tmp_path / "health.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        read_health(tmp_path)
    trainer = Trainer(TrainConfig(epochs=1, subset=200, seed=0), dataset=mnist)
    recorder = HealthRecorder(trainer, tmp_path, every=2)
    trainer.callbacks.append(lambda event: recorder.on_event(trainer, event))
    trainer.fit()
    recorder.close(trainer)
    assert [s["step"] for s in read_health(tmp_path)["samples"]] == [1, 2]
    assert read_health(tmp_path / "missing") is None


def test_a_run_trained_in_its_worker_process_leaves_health_json(tmp_path, monkeypatch):
    from simplecnn.classroom import Classroom
    from simplecnn.jobs import TrainingScheduler
    from simplecnn.runstore import RunStore, learner_key

    monkeypatch.setenv(health.EVERY_ENV, "4")  # the worker process inherits it
    room = Classroom(RunStore(tmp_path / "runs"), TrainingScheduler(1), watch_every_s=0)
    try:
        job = room.start_run(learner_key("ab" * 16), TrainConfig(epochs=1, subset=500, log_every=2), "mnist", 10)
        job.join(120)
        assert job.snapshot().status == "finished"
        stored = read_health(job.run.path)
    finally:
        room.close()
    steps = [s["step"] for s in stored["samples"]]
    assert steps == [1, 4] and stored["batches_per_epoch"] == 7 and stored["every"] == 4


# -- what the Train page says, shown by short trainings ----------------------------------------------------
def short_run(mnist, every=5, **settings) -> tuple[Trainer, list[dict]]:
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, subset=3000, validation_split=0.0, seed=0, device="cpu", **settings)  # 47 steps
    trainer = Trainer(config, dataset=mnist)
    with attach_health(trainer, every=every) as recorded:
        trainer.fit()
    return trainer, recorded.samples


def late(samples: list[dict], key: str, name: str, last: int = 8) -> float:
    """Median of one number over the last samples of a run."""
    return statistics.median(s[key][name] for s in samples[-last:])


def median_grad_size(counts: list[int]) -> float:
    """log10 of the median |gradient| from a histogram (the lower edge of the bin holding the median)."""
    edges = [-np.inf, *grad_edges()]
    cumulative = np.cumsum(counts)
    return edges[min(int(np.searchsorted(cumulative, cumulative[-1] / 2)), len(edges) - 1)]


@pytest.fixture(scope="module")
def healthy(mnist):
    return short_run(mnist)


@pytest.fixture(scope="module")
def high_lr(mnist):
    return short_run(mnist, learning_rate=0.01)


def test_a_healthy_run_changes_its_layers_by_a_small_fraction_and_keeps_most_relus(healthy):
    trainer, samples = healthy
    for name in LAYERS:  # the page: "between about 0.001 and 0.02" with Adam at 0.001
        assert 1e-3 <= late(samples, "update_ratio", name) <= 2e-2, name
    assert late(samples, "dead_relu", "relu1") == late(samples, "dead_relu", "relu2") == 0.0
    assert late(samples, "dead_relu", "relu3") < 0.5
    assert trainer.history.epochs[-1]["train_accuracy"] > 60


def test_too_high_a_learning_rate_moves_weights_far_and_kills_fc1_relus(mnist, healthy, high_lr):
    _, normal = healthy
    # Adam's first step moves every weight by about lr, so at lr 0.1 it is ~100x lr 0.001's.
    _, wild = short_run(mnist, learning_rate=0.1)
    for name in LAYERS:
        assert wild[0]["update_ratio"][name] > 30 * normal[0]["update_ratio"][name], name
    assert wild[0]["update_ratio"]["fc1"] > 1.0  # one step changes fc1 by more than its own size
    # lr 0.01 trains on, but most fc1 units stop firing and their gradients are exactly zero.
    _, high = high_lr
    assert late(high, "dead_relu", "relu3") > 0.6 > late(normal, "dead_relu", "relu3")
    assert median_grad_size(high[-1]["grads"]["fc1"]) == -np.inf  # more than half of fc1's gradients are 0


def test_without_batch_norm_a_high_learning_rate_kills_whole_conv_channels(mnist, high_lr):
    _, with_bn = high_lr
    _, without_bn = short_run(mnist, learning_rate=0.01, batch_norm=False)
    assert late(with_bn, "dead_relu", "relu2") == 0.0
    assert late(without_bn, "dead_relu", "relu2") > 0.5


def test_dropout_0_9_keeps_gradients_large_while_the_network_barely_learns(mnist, healthy):
    normal_trainer, normal = healthy
    trainer, heavy = short_run(mnist, dropout1=0.9, dropout2=0.9)
    assert trainer.history.epochs[-1]["train_accuracy"] < 40 < normal_trainer.history.epochs[-1]["train_accuracy"]
    for name in ("conv1", "conv2", "fc2"):  # a quarter of a decade or more: gradients ~1.8x or larger
        big = statistics.median(median_grad_size(s["grads"][name]) for s in heavy[-8:])
        usual = statistics.median(median_grad_size(s["grads"][name]) for s in normal[-8:])
        assert big >= usual + 0.25, name
