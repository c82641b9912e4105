import gzip
import shutil

import pytest
import torch

from simplecnn import data
from simplecnn.data import DataError, MNIST_FILES, load_dataset, split_indices, to_float


def test_mnist_loads_with_published_checksums(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels.shape == (60000,) and mnist.train_labels.dtype == torch.int64
    assert torch.bincount(mnist.train_labels).tolist()[:2] == [5923, 6742]  # known MNIST class counts
    assert int(mnist.test_labels[0]) == 7  # the first test digit is a 7


def test_loaded_once_per_process(mnist):
    assert load_dataset("mnist") is mnist


def test_to_float_matches_torchvision_to_tensor(mnist):
    x = to_float(mnist.train_images[:3])
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    torch.testing.assert_close(x[0, 0], mnist.train_images[0].float() / 255)


def test_split_is_deterministic_and_disjoint():
    a_train, a_val = split_indices(60000, 0.2, seed=3)
    b_train, b_val = split_indices(60000, 0.2, seed=3)
    assert torch.equal(a_train, b_train) and torch.equal(a_val, b_val)
    assert len(a_val) == 12000 and len(a_train) == 48000
    assert len(set(a_train.tolist()) & set(a_val.tolist())) == 0
    c_train, _ = split_indices(60000, 0.2, seed=4)
    assert not torch.equal(a_train, c_train)
    s_train, s_val = split_indices(60000, 0.2, seed=3, subset=1000)
    assert len(s_train) == 800 and len(s_val) == 200


@pytest.fixture
def copy_of_data(tmp_path, monkeypatch):
    shutil.copytree(data.DEFAULT_DATA_DIR / "mnist", tmp_path / "mnist")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    data.clear_cache()
    yield tmp_path / "mnist"
    data.clear_cache()


def test_missing_file_names_it_and_the_fix(copy_of_data):
    (copy_of_data / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*git checkout"):
        load_dataset("mnist")


def test_corrupt_file_fails_the_checksum(copy_of_data):
    path = copy_of_data / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] ^= 0xFF  # one flipped label byte: same size, wrong MD5
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="Checksum mismatch.*t10k-labels"):
        load_dataset("mnist")


def test_truncated_or_garbage_file(copy_of_data):
    (copy_of_data / "t10k-images-idx3-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist")


def test_sizes_table_matches_the_readme():
    assert MNIST_FILES["train-images-idx3-ubyte"][0] == 60000 * 28 * 28 + 16


def test_fashion_mnist_from_debian_package_when_installed():
    if not data.fashion_available():
        if __import__("os").environ.get("CI") == "true":
            pytest.fail("CI installs dataset-fashion-mnist; it should be available")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    fashion = load_dataset("fashion-mnist")
    assert fashion.train_images.shape == (60000, 28, 28) and fashion.classes[9] == "Ankle boot"
    assert torch.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert fashion.train_labels[:5].tolist() == [9, 0, 0, 3, 0]  # the dataset's known first labels
