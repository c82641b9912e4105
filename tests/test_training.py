import json
import math

import pytest
import torch

from simplecnn.training import (BatchEvent, EpochEvent, History, StopTraining, TrainConfig, Trainer,
                                build_optimizer, random_shift)


def test_short_run_on_a_small_subset_learns(mnist):
    events = []
    config = TrainConfig(epochs=3, subset=6000, batch_size=32, learning_rate=3e-3, lr_schedule="onecycle",
                         seed=0, log_every=20)
    history = Trainer(config, dataset=mnist, callbacks=[events.append]).fit()
    assert history.status == "finished"
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    batches = [e for e in events if isinstance(e, BatchEvent)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[-1].val_accuracy >= 95.0  # ~1,200 validation images
    assert batches and all(b.images_per_second > 0 and b.eta_seconds >= 0 for b in batches)
    assert batches[-1].progress == pytest.approx(1.0)
    assert history.epochs[-1]["val_accuracy"] == epochs[-1].val_accuracy
    assert json.loads(history.to_json())["status"] == "finished"
    assert History.from_dict(json.loads(history.to_json())) == history


def test_stop_is_honoured_mid_epoch_and_training_resumes(mnist):
    config = TrainConfig(epochs=1, subset=3000, batch_size=32, log_every=5)

    def stop_at_20(event):
        if isinstance(event, BatchEvent) and event.batch == 20:
            trainer.request_stop()

    trainer = Trainer(config, dataset=mnist, callbacks=[stop_at_20])
    history = trainer.fit()
    assert history.status == "stopped"
    assert trainer.step == 20  # requested after batch 20, honoured before batch 21
    assert trainer.epoch == 0 and history.epochs == []
    seen = history.images_seen
    trainer.callbacks.clear()
    history = trainer.fit()
    assert history.status == "finished" and trainer.epoch == 1
    assert history.images_seen == len(trainer.train_idx)  # no batch trained twice or skipped
    assert history.images_seen > seen


def test_callback_can_stop_with_exception(mnist):
    def stop(event):
        if isinstance(event, BatchEvent):
            raise StopTraining("enough")

    history = Trainer(TrainConfig(epochs=1, subset=1000, log_every=2), dataset=mnist, callbacks=[stop]).fit()
    assert history.status == "stopped" and history.message == "enough"


@pytest.mark.parametrize("lr", [1.0, 10.0])
def test_divergence_is_detected_with_a_clear_reason(mnist, lr):
    config = TrainConfig(epochs=1, subset=2000, learning_rate=lr, log_every=1)
    trainer = Trainer(config, dataset=mnist)
    history = trainer.fit()
    assert history.status == "diverged"
    assert "diverged at step" in history.message and "lower the learning rate" in history.message
    assert trainer.finished and trainer.fit().status == "diverged"  # cannot be resumed into NaNs


def test_a_dead_network_is_flagged_as_not_learning(mnist):
    # Kill every ReLU after conv1 (no BN to rescue them): nothing below fc1 gets a gradient and every
    # image gets the same logits, so accuracy stays at one class's share, about 10 %.
    config = TrainConfig(epochs=1, subset=1000, batch_norm=False, log_every=1)
    trainer = Trainer(config, dataset=mnist)
    with torch.no_grad():
        trainer.model.conv1.bias.fill_(-1e4)
    history = trainer.fit()
    assert history.status == "finished"
    assert "not learning" in history.warning and "chance level" in history.warning


def test_a_learning_network_gets_no_warning(mnist):
    history = Trainer(TrainConfig(epochs=1, subset=1000, log_every=1), dataset=mnist).fit()
    assert history.epochs[-1]["val_accuracy"] > 20 and history.warning == ""


@pytest.mark.parametrize("name", ["adam", "sgd", "momentum", "rmsprop", "adagrad"])
def test_every_optimizer_builds_and_steps(name):
    p = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer(name, [p], lr=0.1)
    (p ** 2).sum().backward()
    opt.step()
    assert torch.all(p < 1)


@pytest.mark.parametrize("bad", [dict(learning_rate=0), dict(learning_rate=math.nan), dict(epochs=0),
                                 dict(epochs=10**6), dict(batch_size=0), dict(validation_split=1.0),
                                 dict(dropout1=1.0), dict(optimizer="lbfgs"), dict(subset=3)])
def test_bad_settings_are_refused_with_a_message(bad):
    with pytest.raises(ValueError) as err:
        TrainConfig(**bad).validate()
    assert len(str(err.value)) > 10


def test_batch_larger_than_subset_trains_one_batch_per_epoch(mnist):
    trainer = Trainer(TrainConfig(epochs=1, subset=100, batch_size=512), dataset=mnist)
    assert trainer.batches_per_epoch == 1
    assert trainer.fit().status == "finished"


def test_same_seed_same_run(mnist):
    def run():
        config = TrainConfig(epochs=1, subset=600, batch_size=50, seed=7, fast=False)
        return Trainer(config, dataset=mnist).fit().batch_losses
    assert run() == run()


def test_random_shift_moves_pixels_within_bounds():
    x = torch.zeros(5, 1, 28, 28)
    x[:, :, 10, 10] = 1
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.all(y.sum((1, 2, 3)) == 1)
    rows, cols = torch.nonzero(y[:, 0], as_tuple=True)[1:]
    assert torch.all((rows - 10).abs() <= 2) and torch.all((cols - 10).abs() <= 2)


def test_config_round_trip_and_label():
    config = TrainConfig(learning_rate=0.01, batch_norm=False, subset=500)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert "no BN" in config.label() and "lr=0.01" in config.label()


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
def test_state_dict_resumes_exactly_in_a_new_trainer(mnist, schedule, tmp_path):
    """Stop mid-epoch, carry the state through torch.save/torch.load(weights_only=True) into a fresh
    Trainer (as a new process would), finish: the weights equal those of an uninterrupted run."""
    config = TrainConfig(epochs=2, subset=1200, batch_size=100, log_every=1, lr_schedule=schedule)
    whole = Trainer(config, dataset=mnist)
    whole.fit()

    def stop_at_batch_7(event):
        if isinstance(event, BatchEvent) and event.step == 7:
            raise StopTraining("paused")

    first = Trainer(config, dataset=mnist, callbacks=[stop_at_batch_7])
    assert first.fit().status == "stopped"
    torch.save(first.state_dict(), tmp_path / "state.pt")
    torch.manual_seed(1234)  # the new "process" starts with another global RNG state
    second = Trainer(config, dataset=mnist)
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert second.step == 7 and second.history.steps == first.history.steps
    history = second.fit()
    assert history.status == "finished" and history.steps == whole.history.steps
    for (name, a), b in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
