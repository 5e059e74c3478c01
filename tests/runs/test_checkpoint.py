"""Checkpoint IO: exact resume, atomic writes, and refusal of corrupt or code-carrying files."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robustmi.errors import CheckpointError
from robustmi.runs import (
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    sidecar_path,
)


def make_model() -> nn.Module:
    layers = [nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)]
    return nn.Sequential(*layers)  # (B, 1, 8, 8) -> (B, 4, 6, 6) -> (B, 144) -> (B, 3)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """One Adam step on a batch drawn from the global torch RNG (so RNG restore matters)."""
    x = torch.rand(5, 1, 8, 8)
    y = torch.randint(0, 3, (5,))
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def params(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_resume_reproduces_the_next_step_exactly(tmp_path: Path) -> None:
    seed_everything(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        train_step(model, optimizer)
    path = tmp_path / "checkpoints" / "last.pt"
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": get_rng_state()}
    save_checkpoint(path, state, {"epoch": 2, "step": 2, "kwargs": {"width": 4}})
    train_step(model, optimizer)  # the uninterrupted run's next step
    expected_params, expected_draw = params(model), torch.rand(3)

    seed_everything(99)  # a new process: different RNG, fresh model and optimizer
    resumed = make_model()
    resumed_opt = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    tensors, meta = load_checkpoint(path, require_meta=True)
    resumed.load_state_dict(tensors["model"])
    resumed_opt.load_state_dict(tensors["optimizer"])
    set_rng_state(tensors["rng"])
    train_step(resumed, resumed_opt)

    assert meta == {"epoch": 2, "step": 2, "kwargs": {"width": 4}}
    assert json.loads(sidecar_path(path).read_text()) == meta
    assert all(torch.equal(a, b) for a, b in zip(params(resumed), expected_params, strict=True))
    assert torch.equal(torch.rand(3), expected_draw)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    for step in range(3):
        save_checkpoint(tmp_path / "last.pt", {"w": torch.full((2,), float(step))}, {"step": step})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.pt"]
    tensors, meta = load_checkpoint(tmp_path / "last.pt")
    assert meta == {"step": 2} and torch.equal(tensors["w"], torch.full((2,), 2.0))


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.zeros(2)}, {"step": 1})

    def dies_halfway(obj, file) -> None:
        file.write(b"PK\x03\x04 partial bytes")
        raise KeyboardInterrupt  # e.g. the user hits Ctrl-C while the checkpoint is written

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.ones(2)}, {"step": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.pt"]
    tensors, meta = load_checkpoint(path)
    assert meta == {"step": 1} and torch.equal(tensors["w"], torch.zeros(2))


class Boom:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Custom:
    value: int = 1


@pytest.mark.parametrize("legacy", [False, True])
def test_smuggled_code_is_refused_and_not_run(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"model": {"w": torch.ones(2)}, "extra": Boom(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match=r"refused to load .*non-tensor Python object \(\S*system\)"):
        load_checkpoint(path)
    assert not marker.exists()
    # the payload is live: plain unpickling (what load_checkpoint never does) runs it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_custom_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "custom.pt"
    torch.save({"cfg": Custom()}, path)
    with pytest.raises(CheckpointError, match=r"non-tensor Python object \(.*Custom\)") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": make_model().state_dict()}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"is truncated or corrupt") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"is truncated or corrupt"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found; check the path"):
        load_checkpoint(tmp_path / "nope.pt")


def test_plain_state_dict_file_loads(tmp_path: Path) -> None:
    model = make_model()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    tensors, meta = load_checkpoint(path)
    assert meta == {} and tensors.keys() == model.state_dict().keys()
    with pytest.raises(CheckpointError, match=r"has no metadata and no sidecar 'weights.json'"):
        load_checkpoint(path, require_meta=True)
    sidecar_path(path).write_text('{"name": "x"}')
    assert load_checkpoint(path, require_meta=True)[1] == {"name": "x"}
    sidecar_path(path).write_text("{broken")
    with pytest.raises(CheckpointError, match=r"sidecar .* is unreadable"):
        load_checkpoint(path)


def test_non_dict_file(tmp_path: Path) -> None:
    torch.save(torch.ones(3), tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=r"holds a Tensor, not a dict"):
        load_checkpoint(tmp_path / "t.pt")


@pytest.mark.parametrize(
    ("tensors", "meta", "expected"),
    [
        ({"w": torch.ones(1)}, {"bad": object()}, r"meta .* is not JSON-serialisable"),
        ({"w": torch.ones(1)}, {"nan": float("nan")}, r"meta.nan is NaN/inf \(training"),
        ({"rng": {"keys": np.zeros(3)}}, {}, r"cannot store numpy.ndarray at 'tensors.rng.keys'"),
        ({"lr": np.float64(0.1)}, {}, r"cannot store numpy.float64 at 'tensors.lr'"),
        ({"cfg": Custom()}, {}, r"cannot store .*Custom at 'tensors.cfg'"),
        ([torch.ones(1)], {}, r"tensors must be a dict"),
    ],
)
def test_unsaveable_input_writes_nothing(tmp_path: Path, tensors, meta, expected: str) -> None:
    with pytest.raises(CheckpointError, match=expected):
        save_checkpoint(tmp_path / "ck" / "last.pt", tensors, meta)
    assert not (tmp_path / "ck").exists()


def test_json_suffix_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"ends in .json"):
        save_checkpoint(tmp_path / "x.json", {}, {})


def test_plain_containers_round_trip(tmp_path: Path) -> None:
    tensors = {"a": [1, 2.5, "s", None, True], "b": (torch.arange(3), {"c": {4, 5}}), "d": torch.float16,
               "e": torch.Size([2, 3]), 7: b"raw"}
    save_checkpoint(tmp_path / "c.pt", tensors, {})
    loaded, _ = load_checkpoint(tmp_path / "c.pt")
    assert loaded["a"] == tensors["a"] and loaded["d"] == torch.float16 and loaded[7] == b"raw"
    assert torch.equal(loaded["b"][0], torch.arange(3)) and loaded["b"][1] == {"c": {4, 5}}
