import ast
import subprocess
import sys

from simplecnn.codegen import training_script
from simplecnn.training import TrainConfig
from tests.conftest import ROOT


def test_every_option_gives_valid_python():
    for opt in ("adam", "sgd", "momentum", "rmsprop", "adagrad"):
        for schedule in ("constant", "onecycle", "cosine"):
            ast.parse(training_script(TrainConfig(optimizer=opt, lr_schedule=schedule, batch_norm=False,
                                                  augment=True)))


def test_script_reflects_the_settings():
    src = training_script(TrainConfig(learning_rate=0.02, optimizer="momentum", dropout1=0.1, batch_size=32))
    assert "lr=0.02" in src and "momentum=0.9" in src and "nn.Dropout(p=0.1)" in src and "BATCH_SIZE = 32" in src


def test_generated_script_trains(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(training_script(TrainConfig(epochs=2, subset=3000, augment=True),
                                      data_dir=str(ROOT / "data" / "mnist")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 2: validation loss" in result.stdout and "test accuracy" in result.stdout
    accuracy = float(result.stdout.rsplit("test accuracy", 1)[1].strip().rstrip("%"))
    assert accuracy > 75  # 76 Adam steps on 2,400 digits: far above chance, so it really learns
