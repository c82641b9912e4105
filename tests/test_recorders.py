"""The recorders seam of the training process: extras that fail never stop a run, and the registered
recorders' optimizer hooks work in any order."""
from __future__ import annotations

import torch

from simplecnn.recorders import RECORDER_FACTORIES, attach_recorders, close_recorders, notify_recorders
from simplecnn.runstore import RunStore
from simplecnn.snapshots import list_snapshots
from simplecnn.training import TrainConfig, Trainer

CONFIG = TrainConfig(epochs=1, subset=200, batch_size=8, seed=5)  # 160 training images: 20 steps
KEY = "cd" * 16


class Broken:
    def __init__(self) -> None:
        self.closed = 0

    def on_event(self, trainer, event) -> None:
        raise OSError(28, "No space left on device")

    def close(self, trainer) -> None:
        self.closed += 1
        raise OSError(28, "No space left on device")


class Counting:
    def __init__(self) -> None:
        self.events, self.closed = 0, 0

    def on_event(self, trainer, event) -> None:
        self.events += 1

    def close(self, trainer) -> None:
        self.closed += 1


def test_a_failing_recorder_is_dropped_and_the_others_go_on(capsys):
    broken, counting = Broken(), Counting()
    recorders = [broken, counting]
    notify_recorders(recorders, None, object())
    notify_recorders(recorders, None, object())
    assert recorders == [counting] and counting.events == 2 and broken.closed == 1
    close_recorders(recorders, None)  # no exception escapes a close either
    assert counting.closed == 1
    assert "Broken failed in on_event" in capsys.readouterr().err


def test_a_failing_factory_closes_the_recorders_attached_before_it(tmp_path, monkeypatch):
    import simplecnn.recorders as recorders_module

    made = Counting()
    monkeypatch.setattr(recorders_module, "_factory", lambda spec: (lambda trainer, run: made) if spec == "ok"
                        else (_ for _ in ()).throw(ImportError("no such recorder")))
    try:
        attach_recorders(None, None, factories=("ok", "missing"))
    except ImportError:
        pass
    else:
        raise AssertionError("a failing factory must not be skipped silently")
    assert made.closed == 1


def test_registered_recorders_train_together_in_either_order(tmp_path, mnist):
    """torch iterates over the optimizer's step hooks while calling them: a hook that removed itself
    with another one after it raised "OrderedDict mutated during iteration" at its last snapshot."""
    assert set(RECORDER_FACTORIES) >= {"simplecnn.snapshots:recorder_for", "simplecnn.health:recorder_for"}
    torch.manual_seed(0)
    for order in (RECORDER_FACTORIES, tuple(reversed(RECORDER_FACTORIES))):
        run = RunStore(tmp_path / str(len(order)) / order[0].split(":")[0]).create(
            KEY, {"config": CONFIG.to_dict(), "dataset": "mnist"})
        trainer = Trainer(CONFIG, dataset=mnist)
        recorders = attach_recorders(trainer, run, factories=order)
        trainer.callbacks.append(lambda event: notify_recorders(recorders, trainer, event))
        history = trainer.fit()
        close_recorders(recorders, trainer)
        assert history.status == "finished" and len(recorders) == len(order)
        assert [s.step for s in list_snapshots(run) if s.step <= 10] == [0, 1, 3, 10]
        assert (run.path / "health.json").exists()
