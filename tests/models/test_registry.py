"""Registry: names, errors, None-dropping, dataset-filled kwargs, recorded specs."""

import json
from types import SimpleNamespace

import pytest

import robustmi.data
from robustmi.errors import ModelError
from robustmi.models import create_model, list_models, register_model


def test_contract_models_are_registered():
    expected = {
        "baseline-h-encoder",
        "baseline-h",
        "baseline-h-linear",
        "resnet18",
        "resnet50",
        "vgg16",
        "densenet121",
    }
    assert expected <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_models_in_one_line():
    with pytest.raises(ModelError) as info:
        create_model("resnet9000")
    message = str(info.value)
    assert "baseline-h-linear" in message and "densenet121" in message and "\n" not in message


def test_unknown_kwarg_names_it_and_the_accepted_ones():
    with pytest.raises(ModelError, match="does not take num_classes; it takes: .*in_chans"):
        create_model("baseline-h-encoder", num_classes=10)


def test_none_kwargs_are_dropped_and_spec_recorded():
    model = create_model("baseline-h", num_classes=None, in_chans=3, input_size=32, mean=(0.5, 0.5, 0.5))
    assert model.num_classes == 10
    assert model.model_spec == {
        "name": "baseline-h",
        "kwargs": {"in_chans": 3, "input_size": 32, "mean": [0.5, 0.5, 0.5]},
    }
    assert json.loads(json.dumps(model.model_spec)) == model.model_spec


def test_register_model_key_and_reserved_names():
    def classifier():  # a reserved composite name
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="reserved"):
        register_model(classifier)


def test_dataset_fills_only_accepted_kwargs(monkeypatch):
    info = SimpleNamespace(
        name="toy", image_shape=(3, 32, 32), num_classes=4, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.2)
    )
    monkeypatch.setattr(robustmi.data, "get_dataset_info", lambda name: info, raising=False)
    model = create_model("baseline-h", dataset="toy", num_classes=3)
    assert model.encoder.in_chans == 3 and model.encoder.input_size == (32, 32)
    assert model.num_classes == 3  # explicit kwargs win over the dataset's
    assert model.model_spec["kwargs"]["mean"] == [0.4, 0.5, 0.6]
    encoder = create_model("baseline-h-encoder", dataset="toy")
    assert "num_classes" not in encoder.model_spec["kwargs"]


def test_dataset_mnist_uses_real_dataset_info():
    if not hasattr(robustmi.data, "get_dataset_info"):
        pytest.skip("robustmi.data.get_dataset_info not available yet")
    model = create_model("baseline-h", dataset="mnist")
    kwargs = model.model_spec["kwargs"]
    assert kwargs["in_chans"] == 1 and kwargs["input_size"] == 28 and kwargs["num_classes"] == 10
    assert kwargs["mean"] == pytest.approx([0.1307], abs=1e-3)
