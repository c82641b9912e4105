""""Show the code": a plain, self-contained PyTorch script equivalent to a TrainConfig.

The script needs only torch and numpy and the MNIST .gz files, so a learner can paste it into a
notebook. It mirrors what `Trainer` does (split, shuffling, optimizer, schedule, evaluation),
without this package's speed-ups (channels_last, fast dropout mask), which change no results.
"""
from __future__ import annotations

from .training import TrainConfig

_OPTIMIZER_CODE = {
    "adam": "torch.optim.Adam(model.parameters(), lr={lr!r}, weight_decay={wd!r})",
    "sgd": "torch.optim.SGD(model.parameters(), lr={lr!r}, weight_decay={wd!r})",
    "momentum": "torch.optim.SGD(model.parameters(), lr={lr!r}, momentum=0.9, weight_decay={wd!r})",
    "rmsprop": "torch.optim.RMSprop(model.parameters(), lr={lr!r}, weight_decay={wd!r})",
    "adagrad": "torch.optim.Adagrad(model.parameters(), lr={lr!r}, weight_decay={wd!r})",
}

_TEMPLATE = '''\
"""SimpleCNN on MNIST: plain PyTorch, generated from the dashboard's settings ({label})."""
import gzip
from pathlib import Path

import numpy as np
import torch
from torch import nn

DATA = Path({data_dir!r})  # folder with the four MNIST .gz files
EPOCHS = {epochs}
BATCH_SIZE = {batch_size}
VALIDATION_SPLIT = {validation_split}
SUBSET = {subset}  # None = all 60,000 training images
torch.manual_seed({seed})


def read_idx(name):
    raw = gzip.decompress((DATA / name).read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy())


class SimpleCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)
        self.max1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.max2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(64 * 4 * 4, 512)
        self.fc2 = nn.Linear(512, num_classes)
        self.dropout1 = nn.Dropout(p={dropout1})
        self.dropout2 = nn.Dropout(p={dropout2})
        self.batch1 = {batch1}
        self.batch2 = {batch2}

    def forward(self, x):                                                    # (N, 1, 28, 28)
        x = self.dropout1(self.max1(torch.relu(self.batch1(self.conv1(x)))))  # (N, 32, 12, 12)
        x = self.dropout2(self.max2(torch.relu(self.batch2(self.conv2(x)))))  # (N, 64, 4, 4)
        x = torch.relu(self.fc1(x.flatten(1)))                               # (N, 512)
        return self.fc2(x)                                                   # (N, 10) logits


images = read_idx("train-images-idx3-ubyte.gz").unsqueeze(1).float() / 255  # (60000, 1, 28, 28)
labels = read_idx("train-labels-idx1-ubyte.gz").long()
test_images = read_idx("t10k-images-idx3-ubyte.gz").unsqueeze(1).float() / 255
test_labels = read_idx("t10k-labels-idx1-ubyte.gz").long()

order = torch.randperm(len(labels), generator=torch.Generator().manual_seed({seed}))
if SUBSET is not None:
    order = order[:SUBSET]
n_val = round(len(order) * VALIDATION_SPLIT)
val_idx, train_idx = order[:n_val], order[n_val:]

model = SimpleCNN()
loss_fn = nn.CrossEntropyLoss()  # softmax + negative log-likelihood on the logits
optimizer = {optimizer}
{scheduler}

def evaluate(x, y):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    return loss_fn(logits, y).item(), 100.0 * (logits.argmax(1) == y).float().mean().item()


for epoch in range(1, EPOCHS + 1):
    model.train()
    perm = train_idx[torch.randperm(len(train_idx))]
    for start in range(0, len(perm), BATCH_SIZE):
        batch = perm[start:start + BATCH_SIZE]
        x, y = images[batch], labels[batch]{augment}
        optimizer.zero_grad()            # reset gradients
        loss = loss_fn(model(x), y)      # forward pass and loss
        loss.backward()                  # backpropagation
        optimizer.step()                 # update the parameters{scheduler_step}
    if n_val:
        val_loss, val_acc = evaluate(images[val_idx], labels[val_idx])
        print(f"epoch {{epoch}}: validation loss {{val_loss:.4f}}, accuracy {{val_acc:.2f}}%")
    else:
        print(f"epoch {{epoch}} done")

test_loss, test_acc = evaluate(test_images, test_labels)
print(f"Test loss {{test_loss:.4f}}, test accuracy {{test_acc:.2f}}%")
'''

_AUGMENT = '''
        # data augmentation: shift each image by up to 2 pixels (zero fill)
        shifts = torch.randint(-2, 3, (len(x), 2)).tolist()
        padded = nn.functional.pad(x, (2, 2, 2, 2))
        x = torch.stack([torch.roll(p, s, dims=(1, 2)) for p, s in zip(padded, shifts)])[:, :, 2:-2, 2:-2]'''


def training_script(config: TrainConfig, data_dir: str = "data/mnist") -> str:
    """Python source that trains SimpleCNN with `config` using only torch and numpy."""
    c = config
    scheduler, scheduler_step = "", ""
    steps = "EPOCHS * ((len(train_idx) + BATCH_SIZE - 1) // BATCH_SIZE)"
    if c.lr_schedule == "onecycle":
        scheduler = (f"scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr={c.learning_rate!r}, "
                     f"total_steps={steps}, pct_start=0.25)\n")
    elif c.lr_schedule == "cosine":
        scheduler = f"scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max={steps})\n"
    if scheduler:
        scheduler_step = "\n        scheduler.step()                 # next learning rate"
    return _TEMPLATE.format(
        label=c.label(), data_dir=data_dir, epochs=c.epochs, batch_size=c.batch_size,
        validation_split=c.validation_split, subset=c.subset, seed=c.seed,
        dropout1=c.dropout1, dropout2=c.dropout2,
        batch1="nn.BatchNorm2d(32)" if c.batch_norm else "nn.Identity()  # batch norm off",
        batch2="nn.BatchNorm2d(64)" if c.batch_norm else "nn.Identity()  # batch norm off",
        optimizer=_OPTIMIZER_CODE[c.optimizer].format(lr=c.learning_rate, wd=c.weight_decay),
        scheduler=scheduler, scheduler_step=scheduler_step,
        augment=_AUGMENT if c.augment else "")
