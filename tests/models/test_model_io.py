"""save_model / load_model / resolve_model: registry models, compositions, taps, user factories."""

import json
import textwrap

import pytest
import torch
from torch import nn

from robustmi.errors import CheckpointError, ModelError
from robustmi.models import (
    Classifier,
    LayerTap,
    create_head,
    create_model,
    get_model_spec,
    load_model,
    resolve_model,
    save_model,
)
from robustmi.runs import load_checkpoint, save_checkpoint

USER_MODULE = """
    import torch
    from torch import nn


    class TinyEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, stride=2)
            self.fc = nn.Linear(4 * 13 * 13, 8)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))


    def encoder():
        return TinyEncoder()


    def not_a_module():
        return 42


    def broken():
        raise RuntimeError("no GPU here")
"""


@pytest.fixture()
def user_file(tmp_path):
    path = tmp_path / "user_nets.py"
    path.write_text(textwrap.dedent(USER_MODULE))
    return path


def _outputs_equal(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def test_probe_composition_round_trip(tmp_path):
    encoder = create_model("baseline-h-encoder", in_chans=1, input_size=28)
    probe = Classifier(encoder, create_head("mlp", encoder.feature_dim, 10))
    probe.train()(torch.rand(8, 1, 28, 28))  # move BN statistics away from their initial values
    path = save_model(probe, tmp_path / "probe")
    assert path == tmp_path / "probe" / "model.pt"
    sidecar = json.loads((tmp_path / "probe" / "model.json").read_text())
    assert sidecar["name"] == "classifier"
    assert sidecar["kwargs"]["encoder"]["name"] == "baseline-h-encoder"
    assert sidecar["kwargs"]["head"] == {"name": "head", "kwargs": get_model_spec(probe.head)["kwargs"]}
    loaded = load_model(tmp_path / "probe")
    assert isinstance(loaded, Classifier) and loaded.head.kind == "mlp"
    _outputs_equal(loaded, probe, torch.rand(4, 1, 28, 28))


def test_layer_tap_round_trip_to_a_pt_file(tmp_path):
    tap = LayerTap(create_model("baseline-h"), "encoder.convs.2")
    save_model(tap, tmp_path / "tap.pt")
    loaded = load_model(tmp_path / "tap.pt")
    assert isinstance(loaded, LayerTap) and loaded.layer == "encoder.convs.2" and loaded.feature_dim == 2304
    _outputs_equal(loaded, tap, torch.rand(2, 1, 28, 28))


def test_wrappers_are_unwrapped_before_saving(tmp_path):
    model = create_model("baseline-h-linear")
    save_model(nn.DataParallel(model), tmp_path / "dp.pt")
    assert not any(k.startswith("module.") for k in load_checkpoint(tmp_path / "dp.pt")[0]["model"])
    _outputs_equal(load_model(tmp_path / "dp.pt"), model, torch.rand(2, 1, 28, 28))


@pytest.mark.slow
def test_compiled_model_is_unwrapped(tmp_path):
    model = create_model("baseline-h-linear")
    save_model(torch.compile(model), tmp_path / "compiled.pt")  # never called, so nothing compiles
    _outputs_equal(load_model(tmp_path / "compiled.pt"), model, torch.rand(2, 1, 28, 28))


def test_model_without_a_recipe_cannot_be_saved(tmp_path):
    with pytest.raises(ModelError, match="cannot save a Sequential"):
        save_model(nn.Sequential(nn.Flatten()), tmp_path / "x.pt")


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="has no model.pt"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    torch.save(create_model("baseline-h").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not a model saved by save_model"):
        load_model(tmp_path / "bare.pt")


def test_load_with_weights_of_another_architecture_names_keys(tmp_path):
    state = {"model": create_model("baseline-h").state_dict()}
    save_checkpoint(tmp_path / "m.pt", state, {"name": "baseline-h-linear", "kwargs": {}})
    with pytest.raises(
        ModelError, match="unexpected: head.2.bias, .*; wrong shape: head.0.bias, head.0.weight"
    ) as info:
        load_model(tmp_path / "m.pt")
    assert "\n" not in str(info.value)
    save_checkpoint(tmp_path / "u.pt", state, {"name": "resnet9000", "kwargs": {}})
    with pytest.raises(ModelError, match="unknown model 'resnet9000'"):
        load_model(tmp_path / "u.pt")


def test_resolve_run_folder_and_pt_file(tmp_path):
    model = create_model("baseline-h-linear")
    save_model(model, tmp_path / "run")
    x = torch.rand(2, 1, 28, 28)
    _outputs_equal(resolve_model(str(tmp_path / "run")), model, x)
    _outputs_equal(resolve_model(str(tmp_path / "run" / "model.pt")), model, x)


def test_resolve_module_factory(user_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    model = resolve_model("user_nets:encoder")
    assert type(model).__name__ == "TinyEncoder" and model.model_spec["kwargs"]["spec"] == "user_nets:encoder"
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 8)


def test_resolve_file_factory_with_weights_and_round_trip(user_file, tmp_path):
    reference = resolve_model(f"{user_file}:encoder")
    torch.save(reference.state_dict(), tmp_path / "weights.pt")
    model = resolve_model(f"{user_file}:encoder", weights=str(tmp_path / "weights.pt"))
    x = torch.rand(3, 1, 28, 28)
    _outputs_equal(model, reference, x)
    # a probe over the user's encoder saves and reloads by calling the factory again
    probe = Classifier(model, create_head("linear", 8, 10))
    save_model(probe, tmp_path / "probe")
    _outputs_equal(load_model(tmp_path / "probe"), probe, x)


def test_resolve_registry_name_with_weights_from_save_model(tmp_path):
    model = create_model("baseline-h")
    save_model(model, tmp_path / "m.pt")
    resolved = resolve_model("baseline-h", weights=str(tmp_path / "m.pt"))
    _outputs_equal(resolved, model, torch.rand(2, 1, 28, 28))


def test_weights_that_do_not_fit_name_keys(user_file, tmp_path):
    torch.save(create_model("baseline-h").state_dict(), tmp_path / "other.pt")
    with pytest.raises(
        ModelError, match="missing: conv.bias, conv.weight, fc.bias, fc.weight; unexpected: "
    ) as info:
        resolve_model(f"{user_file}:encoder", weights=str(tmp_path / "other.pt"))
    assert "\n" not in str(info.value)
    state = create_model("baseline-h").state_dict()
    state["head.4.weight"] = torch.zeros(3, 200)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(ModelError, match="wrong shape: head.4.weight"):
        resolve_model("baseline-h", weights=str(tmp_path / "shape.pt"))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no/such/run", "cannot resolve model 'no/such/run'"),
        ("robustmi_no_such_module_xyz:make", "cannot import module"),
        ("{file}:missing", "defines no callable 'missing'"),
        ("{file}:not_a_module", "returned int, not a torch.nn.Module"),
        ("{file}:broken", "raised RuntimeError: no GPU here"),
        ("{dir}/absent.py:encoder", "does not exist"),
    ],
)
def test_bad_specs_are_model_errors(spec, message, user_file):
    spec = spec.format(file=user_file, dir=user_file.parent)
    with pytest.raises(ModelError, match=message) as info:
        resolve_model(spec)
    assert "\n" not in str(info.value)


def test_bad_weights_files(user_file, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_model(f"{user_file}:encoder", weights=str(tmp_path / "nope.pt"))
    torch.save({"epoch": torch.tensor(3), "lr": 0.1}, tmp_path / "junk.pt")
    with pytest.raises(ModelError, match="holds no state_dict"):
        resolve_model(f"{user_file}:encoder", weights=str(tmp_path / "junk.pt"))
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError):
        resolve_model(f"{user_file}:encoder", weights=str(tmp_path / "corrupt.pt"))
