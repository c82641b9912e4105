import torch
from torch import nn

from simplecnn.model import STAGES, FastDropout, SimpleCNN


class GuideSimpleCNN(nn.Module):
    """The guide's class, attribute for attribute, with the forward pass it describes."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=32, kernel_size=5)
        self.conv2 = nn.Conv2d(in_channels=32, out_channels=64, kernel_size=5)
        self.max1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.max2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(in_features=64 * 4 * 4, out_features=512)
        self.fc2 = nn.Linear(in_features=512, out_features=num_classes)
        self.dropout1 = nn.Dropout(p=0.45)
        self.dropout2 = nn.Dropout(p=0.35)
        self.batch1 = nn.BatchNorm2d(num_features=32)
        self.batch2 = nn.BatchNorm2d(num_features=64)

    def forward(self, x):
        x = self.dropout1(self.max1(torch.relu(self.batch1(self.conv1(x)))))
        x = self.dropout2(self.max2(torch.relu(self.batch2(self.conv2(x)))))
        return self.fc2(torch.relu(self.fc1(x.view(x.size(0), -1))))


def test_parameter_count():
    assert SimpleCNN().num_parameters() == 582_218
    assert SimpleCNN(batch_norm=False).num_parameters() == 582_218 - 2 * (32 + 64)


def test_stage_shapes():
    table = {row.name: row.output_shape for row in SimpleCNN().layer_table()}
    assert table["input"] == (1, 1, 28, 28)
    assert table["conv1"] == (1, 32, 24, 24)
    assert table["max1"] == (1, 32, 12, 12)
    assert table["conv2"] == (1, 64, 8, 8)
    assert table["max2"] == (1, 64, 4, 4)
    assert table["flatten"] == (1, 1024)
    assert table["fc1"] == (1, 512)
    assert table["fc2"] == (1, 10)
    assert sum(r.parameters for r in SimpleCNN().layer_table()) == 582_218
    assert [r.name for r in SimpleCNN().layer_table()][1:] == list(STAGES)


def test_state_dict_moves_both_ways_with_the_guide_class():
    torch.manual_seed(0)
    ours, guide = SimpleCNN(), GuideSimpleCNN()
    assert set(ours.state_dict()) == set(guide.state_dict())
    guide.load_state_dict(ours.state_dict())
    x = torch.rand(4, 1, 28, 28)
    ours.eval(), guide.eval()
    torch.testing.assert_close(ours(x), guide(x))
    torch.manual_seed(1)
    other = GuideSimpleCNN().eval()
    ours.load_state_dict(other.state_dict())
    torch.testing.assert_close(ours(x), other(x))


def test_fast_dropout_statistics_and_scaling():
    torch.manual_seed(0)
    drop = FastDropout(p=0.45).train()
    x = torch.rand(64, 32, 12, 12) + 0.5
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.55) < 0.01
    torch.testing.assert_close(y[kept], x[kept] / 0.55)
    drop.eval()
    assert torch.equal(drop(x), x)


def test_fast_dropout_gradient_matches_mask_and_channels_last():
    torch.manual_seed(0)
    drop = FastDropout(p=0.35).train()
    x = torch.rand(8, 64, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = drop(x)
    y.sum().backward()
    mask = (y != 0).float() / 0.65
    torch.testing.assert_close(x.grad, mask)


def test_fast_dropout_is_repeatable_from_torch_seed():
    def run():
        torch.manual_seed(123)
        return FastDropout(0.5).train()(torch.ones(1000))
    assert torch.equal(run(), run())
