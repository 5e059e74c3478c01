"""saliency_report on real MNIST: files, shapes, determinism, targets chosen, errors."""

import json

import matplotlib.image as plt_image
import numpy as np
import pytest
import torch

from robustmi.data import load_dataset
from robustmi.errors import CheckpointError, ConfigError, ModelError
from robustmi.mi import DIMObjective, save_dim_objective
from robustmi.models import create_model, save_model
from robustmi.saliency import SaliencyConfig, pick_samples, saliency_report


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", "test").subset(300)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("sup")
    save_model(create_model("baseline-h", dataset="mnist"), run)
    return run


def test_report_writes_grid_maps_and_results(mnist, classifier_run, tmp_path):
    model = create_model("baseline-h-linear", dataset="mnist")
    models = {"sup": str(classifier_run), "lin": model}
    results = saliency_report(models, mnist, 3, "grad", tmp_path / "out", grid_rows=2)
    out = tmp_path / "out"
    height, width = plt_image.imread(out / "saliency.png").shape[:2]  # 2 rows, 3 columns at 100 dpi
    assert width == 510 and 380 <= height <= 420  # the wrapped title rows set the exact height
    assert (out / "config.yaml").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["per_model"] == results["per_model"]
    assert saved["per_model"]["sup"]["target"] == "ce" and saved["method"] == "grad"
    assert saved["alignment_metric"] == "edge_spearman" and set(saved["ranking"]) == {"sup", "lin"}
    for name in ("sup", "lin"):
        scores = saved["per_model"][name]
        assert -1 <= scores["edge_spearman"] <= 1 and 0 <= scores["foreground_mass"] <= 1
        assert len(scores["per_sample"]["edge_spearman"]) == 3
    with np.load(out / "saliency.npz") as npz:
        assert set(npz.files) == {"inputs", "labels", "indices", "sup", "lin"}
        assert npz["inputs"].shape == npz["sup"].shape == npz["lin"].shape == (3, 1, 28, 28)
        idx = npz["indices"]
        np.testing.assert_array_equal(npz["inputs"], mnist.images[idx].numpy())
        np.testing.assert_array_equal(npz["labels"], mnist.labels[idx].numpy())
    assert saved["sample_indices"] == idx.tolist()


def test_same_seed_same_samples_and_maps(mnist, classifier_run, tmp_path):
    def run(name, seed):
        saliency_report({"m": str(classifier_run)}, mnist, 2, "smoothgrad", tmp_path / name,
                        seed=seed, smoothgrad_samples=3)
        with np.load(tmp_path / name / "saliency.npz") as npz:
            return npz["indices"], npz["m"]

    (i1, m1), (i2, m2), (i3, m3) = run("a", 1), run("b", 1), run("c", 2)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(i1, i3) and not np.array_equal(m1, m3)


def test_pick_samples_is_seeded_and_distinct():
    assert torch.equal(pick_samples(50, 10, seed=3), pick_samples(50, 10, seed=3))
    assert len(set(pick_samples(50, 50, seed=0).tolist())) == 50
    with pytest.raises(ConfigError, match="exceeds the 50 images"):
        pick_samples(50, 51, seed=0)


def test_neuron_and_logit_targets_from_settings(mnist, classifier_run, tmp_path):
    r = saliency_report({"m": str(classifier_run)}, mnist, 2, "grad", tmp_path / "n",
                        target="neuron", layer="encoder.convs.2", channel=3, scale="signed")
    assert r["per_model"]["m"]["target"] == "neuron" and r["layer"] == "encoder.convs.2"
    r = saliency_report({"m": str(classifier_run)}, mnist, 2, "ig", tmp_path / "l", target="logit",
                        ig_steps=4)
    assert r["per_model"]["m"]["target"] == "logit" and r["ig_steps"] == 4


def test_finished_run_is_not_overwritten(mnist, classifier_run, tmp_path):
    saliency_report({"m": str(classifier_run)}, mnist, 1, "grad", tmp_path / "o")
    before = (tmp_path / "o" / "results.json").read_text()
    with pytest.raises(CheckpointError, match="already holds a finished run"):
        saliency_report({"m": str(classifier_run)}, mnist, 1, "grad", tmp_path / "o")
    assert (tmp_path / "o" / "results.json").read_text() == before


@pytest.mark.parametrize(
    "settings, error, match",
    [
        ({"method": "lrp"}, ConfigError, "unknown method 'lrp'"),
        ({"samples": 0}, ConfigError, "samples must be >= 1"),
        ({"target": "neuron"}, ConfigError, "needs a layer and a channel"),
        ({"target": "mi"}, ModelError, "has no DIM critic"),
        ({"noise": -1.0}, ConfigError, "noise must be >= 0"),
        ({"colour": "red"}, ConfigError, "colour"),
    ],
)
def test_bad_settings(mnist, classifier_run, tmp_path, settings, error, match):
    kwargs = {"samples": 2, "method": "grad", **settings}
    with pytest.raises(error, match=match):
        saliency_report({"m": str(classifier_run)}, mnist, out_dir=tmp_path / "x", **kwargs)
    assert not (tmp_path / "x" / "results.json").exists()


def test_model_errors(mnist, tmp_path):
    encoder = create_model("baseline-h-encoder", dataset="mnist")
    with pytest.raises(ModelError, match="neither a classifier nor an encoder run folder"):
        saliency_report({"enc": encoder}, mnist, 2, "grad", tmp_path / "e")
    with pytest.raises(ConfigError, match="reserved"):
        saliency_report({"labels": encoder}, mnist, 2, "grad", tmp_path / "r")
    with pytest.raises(ConfigError, match="no models"):
        saliency_report({}, mnist, 2, "grad", tmp_path / "z")
    with pytest.raises(ModelError):
        saliency_report({"gone": str(tmp_path / "missing-run")}, mnist, 2, "grad", tmp_path / "g")


def test_config_defaults_are_the_documented_ones():
    cfg = SaliencyConfig()
    assert (cfg.dataset, cfg.split, cfg.samples) == ("mnist", "test", 8)
    assert (cfg.method, cfg.target, cfg.scale) == ("grad", "auto", "absolute")
    assert (cfg.ig_steps, cfg.smoothgrad_samples, cfg.noise, cfg.baseline) == (50, 50, 0.15, 0.0)


class ToyDIM(torch.nn.Module):
    """A batch-level MI-like score of (x, z) pairs: diagonal positives against all pairs (InfoNCE form)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(784, 64)

    def mi(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        scores = self.proj(x.flatten(1)) @ z.T  # (B, 784) -> (B, 64) @ (64, B) -> (B, B)
        return scores.diag().mean() - scores.logsumexp(dim=1).mean()


def test_encoder_with_dim_objective_gets_the_dim_loss_target(mnist, tmp_path):
    torch.manual_seed(0)
    encoder = create_model("baseline-h-encoder", dataset="mnist")
    results = saliency_report({"enc": (encoder, ToyDIM())}, mnist, 3, "smoothgrad", tmp_path / "o",
                              smoothgrad_samples=2)
    assert results["per_model"]["enc"]["target"] == "mi"
    assert results["per_model"]["enc"]["per_sample_target"] is False
    with pytest.raises(ConfigError, match="samples >= 2"):
        saliency_report({"enc": (encoder, ToyDIM())}, mnist, 1, "grad", tmp_path / "one")


def test_encoder_run_folder_gets_the_dim_loss_target(mnist, tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "enc"
    encoder = create_model("baseline-h-encoder", dataset="mnist")
    save_model(encoder, run)
    save_dim_objective(DIMObjective(1, encoder.feature_dim, critic_width=64), run)
    results = saliency_report({"enc": str(run)}, mnist, 3, "grad", tmp_path / "out")
    scores = results["per_model"]["enc"]
    assert scores["target"] == "mi" and scores["per_sample_target"] is False
    with np.load(tmp_path / "out" / "saliency.npz") as npz:
        assert npz["enc"].shape == (3, 1, 28, 28) and np.abs(npz["enc"]).sum() > 0
    with pytest.raises(ConfigError, match="samples >= 2"):
        saliency_report({"enc": str(run)}, mnist, 1, "grad", tmp_path / "one")
