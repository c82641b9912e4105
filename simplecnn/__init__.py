"""SimpleCNN: the guide's small convolutional network on MNIST, as a plain PyTorch package."""
from .data import DataError, Dataset, load_dataset
from .model import SimpleCNN
from .training import BatchEvent, EpochEvent, History, StopTraining, TrainConfig, Trainer, train
from .evaluation import EvaluationResult, evaluate, evaluate_split

__all__ = [
    "SimpleCNN", "TrainConfig", "Trainer", "train", "History", "BatchEvent", "EpochEvent",
    "StopTraining", "DataError", "Dataset", "load_dataset", "EvaluationResult", "evaluate",
    "evaluate_split",
]
