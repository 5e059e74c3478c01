"""Loading a model never runs code a file names; weights from DDP/timm checkpoints load; kwargs validated."""

import json
import textwrap

import pytest
import torch

from robustmi.errors import CheckpointError, ModelError
from robustmi.models import create_model, load_model, resolve_model, save_model
from robustmi.models.factory import TRUST_ENV
from robustmi.runs import save_checkpoint

PAYLOAD = """
    import pathlib
    pathlib.Path({marker!r}).write_text("executed")

    def make():
        pathlib.Path({marker!r}).write_text("called")
        import torch
        return torch.nn.Linear(2, 2)
"""


@pytest.fixture()
def payload(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "payload.py"
    path.write_text(textwrap.dedent(PAYLOAD.format(marker=str(marker))))
    return path, marker


def _crafted_run(folder, spec_text: str, *, sidecar_only: bool) -> None:
    folder.mkdir()
    state = torch.nn.Linear(2, 2).state_dict()
    meta = {"name": "factory", "kwargs": {"spec": spec_text}}
    if sidecar_only:  # a plain state_dict beside a crafted model.json
        torch.save({"model": state}, folder / "model.pt")
        (folder / "model.json").write_text(json.dumps(meta))
    else:  # our own checkpoint format with the spec inside
        save_checkpoint(folder / "model.pt", {"model": state}, meta)


@pytest.mark.parametrize("sidecar_only", [False, True])
@pytest.mark.parametrize("relative", [False, True])
def test_crafted_factory_spec_never_executes(tmp_path, payload, monkeypatch, sidecar_only, relative):
    path, marker = payload
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    spec = "payload.py:make" if relative else f"{path}:make"
    _crafted_run(tmp_path / "evil", spec, sidecar_only=sidecar_only)
    evil = tmp_path / "evil"
    loads = (lambda: load_model(evil), lambda: resolve_model(str(evil / "model.pt")))
    for load in loads:
        with pytest.raises(ModelError, match=f"never imports.*{TRUST_ENV}") as info:
            load()
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_crafted_dotted_module_spec_never_imports(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    _crafted_run(tmp_path / "evil", "os:getcwd", sidecar_only=False)
    with pytest.raises(ModelError, match="never imports"):
        load_model(tmp_path / "evil")


def test_trusted_factory_rebuilds(tmp_path, payload, monkeypatch):
    path, marker = payload
    monkeypatch.delenv(TRUST_ENV, raising=False)
    _crafted_run(tmp_path / "run", f"{path}:make", sidecar_only=False)
    assert isinstance(load_model(tmp_path / "run", trust=[f"{path}:make"]), torch.nn.Linear)
    assert marker.read_text() == "called"


def test_trust_from_environment(tmp_path, payload, monkeypatch):
    path, marker = payload
    _crafted_run(tmp_path / "run", f"{path}:other", sidecar_only=False)
    monkeypatch.setenv(TRUST_ENV, f"{path}:other")
    with pytest.raises(ModelError, match="defines no callable 'other'"):
        load_model(tmp_path / "run")


@pytest.mark.parametrize(
    "meta",
    [
        {"name": "head", "kwargs": {"kind": "mlp"}},
        {"name": "head", "kwargs": {"kind": "mlp", "in_dim": "x", "num_classes": 3}},
        {"name": "layer-tap", "kwargs": {"model": {"name": "baseline-h", "kwargs": {}}}},
        {"name": "classifier", "kwargs": {"encoder": 3}},
        {"name": "baseline-h", "kwargs": {"feature_dim": -5}},
        {"name": "baseline-h", "kwargs": {"bogus": 1}},
        {"name": "factory", "kwargs": {"spec": 5}},
        {"name": "factory", "kwargs": {}},
    ],
)
def test_malformed_specs_are_one_line_errors(tmp_path, meta):
    save_checkpoint(tmp_path / "m.pt", {"model": {"w": torch.zeros(1)}}, meta)
    with pytest.raises((CheckpointError, ModelError)) as info:
        load_model(tmp_path / "m.pt")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("wrap", ["module", "state_dict", "model_ema", "compiled"])
def test_weights_from_ddp_and_timm_checkpoints(tmp_path, wrap):
    reference = create_model("baseline-h-linear")
    state = reference.state_dict()
    if wrap == "module":
        obj = {f"module.{k}": v for k, v in state.items()}
    elif wrap == "compiled":
        obj = {"state_dict": {f"module._orig_mod.{k}": v for k, v in state.items()}}
    else:
        obj = {wrap: {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(obj, tmp_path / "w.pt")
    model = resolve_model("baseline-h-linear", weights=str(tmp_path / "w.pt"))
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"feature_dim": -5}, "feature_dim=-5 must be a positive integer"),
        ({"feature_dim": 0}, "feature_dim=0 must be a positive integer"),
        ({"num_classes": 1.5}, "num_classes=1.5 must be a positive integer"),
        ({"input_size": [28, 28, 3]}, "input_size"),
        ({"std": [0.0]}, "std"),
        ({"input_size": 2}, "at least"),
    ],
)
def test_create_model_validates_kwargs(kwargs, message):
    with pytest.raises(ModelError, match=message):
        create_model("baseline-h", **kwargs)


def test_factory_whose_module_fails_at_import(tmp_path, monkeypatch):
    (tmp_path / "bad_syntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "bad_value.py").write_text("raise ValueError('boom\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("bad_syntax:f", "bad_value:f", f"{tmp_path / 'bad_syntax.py'}:f"):
        with pytest.raises(ModelError, match="failed") as info:
            resolve_model(spec)
        assert "\n" not in str(info.value)


def test_user_named_factory_round_trips(tmp_path, payload, monkeypatch):
    path, _ = payload
    monkeypatch.delenv(TRUST_ENV, raising=False)
    model = resolve_model(f"{path}:make")  # the user names it: this process may rebuild it
    save_model(model, tmp_path / "run")
    assert isinstance(load_model(tmp_path / "run"), torch.nn.Linear)
