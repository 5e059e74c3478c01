"""``robustmi saliency`` end to end on real MNIST, and its one-line errors (exit code 2)."""

import json

import numpy as np
import pytest
import torch
import yaml

from robustmi.cli.main import main
from robustmi.cli.saliency_cmd import model_names
from robustmi.models import create_model, save_model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("runs")
    save_model(create_model("baseline-h", dataset="mnist"), root / "standard")
    save_model(create_model("baseline-h-linear", dataset="mnist"), root / "robust")
    return root


def _run(argv) -> int:
    """Exit code of ``robustmi`` (0 when ``main`` returns normally)."""
    try:
        main(argv)
    except SystemExit as done:
        return done.code
    return 0


def _fail(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_end_to_end_two_models(runs, tmp_path, capsys):
    out = tmp_path / "sal"
    code = _run(["saliency", "--model", str(runs / "standard"), "--model", str(runs / "robust"),
                 "--dataset", "mnist", "--samples", "3", "--method", "ig", "--ig-steps", "4", "--seed", "5",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "standard: target=ce edge_spearman=" in printed and "robust: target=ce" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["models"] == [str(runs / "standard"), str(runs / "robust")]
    assert (results["method"], results["ig_steps"], results["seed"], results["samples"]) == ("ig", 4, 5, 3)
    assert list(results["per_model"]) == ["standard", "robust"]
    with np.load(out / "saliency.npz") as npz:
        assert npz["standard"].shape == npz["robust"].shape == (3, 1, 28, 28)
    assert (out / "saliency.png").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["ig_steps"] == 4


def test_config_file_and_overrides(runs, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"models: [{runs / 'standard'}]\nsamples: 2\nmethod: smoothgrad\nsmoothgrad_samples: 2\n")
    argv = ["saliency", "--config", str(cfg), "--out", str(tmp_path / "o"), "noise=0.3", "--seed", "1"]
    assert _run(argv) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert (results["method"], results["noise"]) == ("smoothgrad", 0.3)
    assert (results["seed"], results["samples"], results["smoothgrad_samples"]) == (1, 2, 2)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--method", "lrp"], "unknown method 'lrp'"),
        (["--samples", "0"], "samples must be >= 1"),
        (["--target", "neuron"], "needs a layer and a channel"),
        (["--scale", "log"], "unknown scale 'log'"),
        (["--dataset", "imagenet"], "imagenet"),
        (["colour=red"], "colour"),
    ],
)
def test_bad_options_exit_2_one_line(runs, tmp_path, capsys, extra, match):
    err = _fail(["saliency", "--model", str(runs / "standard"), "--out", str(tmp_path / "x"), *extra], capsys)
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x" / "results.json").exists()


def test_missing_model_and_no_model_exit_2(tmp_path, capsys):
    err = _fail(["saliency", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")], capsys)
    assert "nope" in err and len(err.splitlines()) == 1
    err = _fail(["saliency", "--out", str(tmp_path / "y")], capsys)
    assert "no models given" in err and len(err.splitlines()) == 1


def test_model_names_are_unique_and_readable(tmp_path):
    names = model_names(["runs/enc/", "other/enc", "x/model.pt", "pkg.mod:make_net", "labels"])
    assert names == ["enc", "enc-2", "x", "make_net", "labels-2"]


def test_weights_load_into_a_plain_module_factory(runs, tmp_path, capsys):
    """--weights fills a bring-your-own nn.Module classifier (no robustmi interface), as evaluate does."""
    (tmp_path / "mynets.py").write_text(
        "from torch import nn\n\ndef net():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n"
    )
    trained = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "byo"
    argv = ["saliency", "--model", f"{tmp_path / 'mynets.py'}:net", "--weights", str(tmp_path / "w.pt"),
            "--model", str(runs / "standard"), "--weights", "-", "--samples", "2", "--target", "logit",
            "--out", str(out)]
    assert _run(argv) == 0
    assert "net: target=logit" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["weights"] == [str(tmp_path / "w.pt"), "-"]
    assert [m["weights"] for m in results["per_model"].values()] == [str(tmp_path / "w.pt"), None]
    with np.load(out / "saliency.npz") as npz:  # the logit's input gradient is the loaded weight row
        expected = trained[1].weight.detach()[npz["labels"]].view(2, 1, 28, 28).numpy()
        np.testing.assert_allclose(npz["net"], expected, rtol=1e-5, atol=1e-7)


def test_weights_count_must_match_models(runs, tmp_path, capsys):
    argv = ["saliency", "--model", str(runs / "standard"), "--model", str(runs / "robust"),
            "--weights", "w.pt", "--out", str(tmp_path / "x")]
    err = _fail(argv, capsys)
    assert "1 weights for 2 models" in err and len(err.splitlines()) == 1
