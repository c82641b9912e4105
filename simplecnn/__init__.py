"""SimpleCNN: the guide's small convolutional network on MNIST, as a plain PyTorch package.

    from simplecnn import SimpleCNN, TrainConfig, Trainer, load_checkpoint, preprocess_drawing
"""
from .checkpoints import load_checkpoint, save_checkpoint
from .data import DataError, Dataset, load_dataset
from .drawing import predict_drawing, preprocess_drawing, preprocess_steps
from .evaluation import EvaluationResult, evaluate, evaluate_split
from .model import SimpleCNN
from .training import BatchEvent, EpochEvent, History, StopTraining, TrainConfig, Trainer, train

__all__ = [
    "SimpleCNN", "TrainConfig", "Trainer", "train", "History", "BatchEvent", "EpochEvent",
    "StopTraining", "DataError", "Dataset", "load_dataset", "EvaluationResult", "evaluate",
    "evaluate_split", "load_checkpoint", "save_checkpoint", "preprocess_drawing", "preprocess_steps",
    "predict_drawing",
]
