"""Property-based fuzz of the dataset readers: any bytes give data or a DataError, never another exception.

Examples are derandomized (the same on every run, so the verdict never changes) and few, to stay fast.
"""

from __future__ import annotations

import gzip
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustmi.data.cifar import read_cifar_batch
from robustmi.data.idx import parse_idx_images, parse_idx_labels, read_idx_bytes
from robustmi.data.svhn import read_svhn
from robustmi.errors import DataError

from .files import cifar_batch, idx_bytes, py2_pickle, svhn_arrays, write_svhn

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
U32 = st.integers(0, 2**32 - 1)


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in flips:
        buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


def _flips():
    return st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=6)


def _no_crash(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning on the way is a bug too
        try:
            call()
        except DataError as error:
            assert "\n" not in str(error)


@FUZZ
@given(magic=st.sampled_from([2049, 2051, 0, 2**32 - 1]), dims=st.lists(U32, min_size=0, max_size=4),
       payload=st.binary(max_size=64))
def test_idx_header_fuzz(tmp_path_factory, magic, dims, payload):
    content = idx_bytes(magic, tuple(dims), payload)
    path = Path("fuzz-idx")
    _no_crash(lambda: parse_idx_images(path, content, (2, 2)))
    _no_crash(lambda: parse_idx_labels(path, content, 10))


@FUZZ
@given(flips=_flips(), cut=st.one_of(st.none(), st.integers(0, 40)), gz=st.booleans())
def test_idx_file_mutation_fuzz(tmp_path_factory, flips, cut, gz):
    images = np.arange(2 * 2 * 2, dtype=np.uint8).reshape(2, 2, 2)
    content = _mutate(idx_bytes(2051, images.shape, images.tobytes()), flips, cut)
    path = tmp_path_factory.mktemp("idx") / ("f.gz" if gz else "f")
    path.write_bytes(_mutate(gzip.compress(content), flips[:1], None) if gz else content)

    def read() -> None:
        parse_idx_images(path, read_idx_bytes(path), (2, 2))

    _no_crash(read)


@FUZZ
@given(flips=_flips(), cut=st.one_of(st.none(), st.integers(0, 400)))
def test_cifar_pickle_mutation_fuzz(tmp_path_factory, flips, cut):
    data, labels = cifar_batch(2, seed=0)
    raw = py2_pickle({b"data": data, b"labels": labels})
    path = tmp_path_factory.mktemp("cifar") / "data_batch_1"
    path.write_bytes(_mutate(raw, flips, cut))
    _no_crash(lambda: read_cifar_batch(path))


@FUZZ
@given(labels=st.one_of(st.lists(st.integers(-(2**70), 2**70), max_size=3),
                        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
                        st.text(max_size=3), st.none()))
def test_cifar_label_values_fuzz(tmp_path_factory, labels):
    data = np.zeros((len(labels) if isinstance(labels, list) else 1, 3072), dtype=np.uint8)
    path = tmp_path_factory.mktemp("cifar") / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    _no_crash(lambda: read_cifar_batch(path))


@pytest.fixture(scope="module")
def svhn_bytes(tmp_path_factory) -> bytes:
    pytest.importorskip("scipy")
    x, y = svhn_arrays(2)
    return write_svhn(tmp_path_factory.mktemp("svhn"), "test", x, y).read_bytes()


@FUZZ
@given(flips=_flips(), cut=st.one_of(st.none(), st.integers(0, 7000)))
def test_svhn_mat_mutation_fuzz(tmp_path_factory, svhn_bytes, flips, cut):
    path = tmp_path_factory.mktemp("svhn") / "test_32x32.mat"
    path.write_bytes(_mutate(svhn_bytes, flips, cut))
    _no_crash(lambda: read_svhn(path))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(y=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-300, 300)),
                  min_size=1, max_size=3))
def test_svhn_label_values_fuzz(tmp_path_factory, y):
    pytest.importorskip("scipy")
    x = np.zeros((32, 32, 3, len(y)), dtype=np.uint8)
    labels = np.array(y, dtype=np.float64).reshape(-1, 1)
    path = write_svhn(tmp_path_factory.mktemp("svhn"), "test", x, labels)
    _no_crash(lambda: read_svhn(path))


def test_svhn_nan_label_message(tmp_path):
    pytest.importorskip("scipy")
    x = np.zeros((32, 32, 3, 2), dtype=np.uint8)
    path = write_svhn(tmp_path, "test", x, np.array([[1.0], [np.nan]]))
    with pytest.raises(DataError, match="label nan at index 1 is not a whole number"):
        read_svhn(path)


def test_idx_header_larger_than_int64(tmp_path):
    content = idx_bytes(2051, (2**32 - 1, 2**32 - 1, 2**32 - 1), b"")
    with pytest.raises(DataError, match="truncated"):
        parse_idx_images(Path("x"), content, (28, 28))
