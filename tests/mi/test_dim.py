"""DIMObjective: bound composition, gradient paths (both branches / authors' detach), save/load, errors."""

from __future__ import annotations

import pytest
import torch

from robustmi.errors import CheckpointError, ConfigError
from robustmi.mi import DIMObjective, dv_bound, infonce_bound, load_dim_objective, save_dim_objective
from robustmi.runs import save_checkpoint


def _batch(b: int = 6, z_dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 1, 28, 28, generator=g), torch.randn(b, z_dim, generator=g)


def test_defaults_are_the_papers_configuration():
    dim = DIMObjective(1, 64)
    # width 2048 (paper), 2-conv image branch (the authors' released code, which produced the tables)
    assert dim.estimator == "dv" and dim.config["critic_width"] == 2048 and dim.config["num_convs"] == 2
    assert (dim.local_weight, dim.global_weight) == (1.0, 0.0)
    assert not dim.include_positive_in_negatives
    assert sum(p.numel() for p in dim.parameters()) == sum(p.numel() for p in dim.critic.parameters())


def test_local_term_is_per_location_dv_of_the_critic_scores():
    torch.manual_seed(0)
    dim = DIMObjective(1, 8, critic_width=16).eval()  # eval: BatchNorm running stats, same output per call
    x, z = _batch()
    scores = dim.scores(x, z)  # (B, B, L)
    assert scores.shape == (6, 6, 49)  # 2 strided convs: a 7x7 map of a 28x28 image
    torch.testing.assert_close(dim.mi(x, z), dv_bound(scores))
    torch.testing.assert_close(dim(x, z), dv_bound(scores))
    torch.testing.assert_close(dim.mi(x, z, estimator="infonce"), infonce_bound(scores))


def test_global_term_and_weighted_average():
    torch.manual_seed(0)
    dim = DIMObjective(1, 8, critic_width=16, local_weight=1.0, global_weight=3.0).eval()
    x, z = _batch()
    ex, ez = dim.critic.embed_x(x), dim.critic.embed_z(z)  # (B, E, L), (B, E)
    scale = 16**0.5  # the one scoring rule: dot products divided by sqrt(width)
    local = dv_bound(torch.einsum("iel,je->ijl", ex, ez) / scale)
    global_ = dv_bound(ex.mean(-1) @ ez.t() / scale)  # location-averaged x-embedding vs z: (B, B)
    torch.testing.assert_close(dim.mi(x, z), (local + 3.0 * global_) / 4.0)


def test_authors_negative_term_switch_is_passed_to_dv():
    torch.manual_seed(0)
    dim = DIMObjective(1, 8, critic_width=16, include_positive_in_negatives=True).eval()
    x, z = _batch()
    torch.testing.assert_close(dim.mi(x, z), dv_bound(dim.scores(x, z), include_positive_in_negatives=True))
    assert dim.mi(x, z) < dv_bound(dim.scores(x, z))  # the extra exp(0) terms lower the estimate


def test_training_steps_raise_the_bound():
    torch.manual_seed(0)
    dim = DIMObjective(1, 8, critic_width=16)
    x, z = _batch(8)
    opt = torch.optim.Adam(dim.parameters(), lr=1e-3)
    start = float(dim.mi(x, z))
    for _ in range(8):
        loss = -dim.mi(x, z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(dim.mi(x, z)) > start + 0.5


def test_bf16_autocast_gives_a_finite_float32_bound():
    torch.manual_seed(0)
    dim = DIMObjective(1, 8, critic_width=16)
    x, z = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = dim.mi(x, z)
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_feature_maps_are_flattened_and_bad_inputs_raise():
    dim = DIMObjective(1, 12, critic_width=16)
    x, _ = _batch()
    assert torch.isfinite(dim.mi(x, torch.randn(6, 3, 2, 2)))  # (B, 3, 2, 2) -> (B, 12)
    with pytest.raises(ConfigError, match="batch sizes differ"):
        dim.mi(x, torch.randn(5, 12))
    with pytest.raises(ConfigError, match="unknown MI estimator"):
        dim.mi(x, torch.randn(6, 12), estimator="mine")
    with pytest.raises(ConfigError, match="unknown MI estimator"):
        DIMObjective(1, 12, estimator="mine")
    with pytest.raises(ConfigError, match="weights"):
        DIMObjective(1, 12, local_weight=0.0, global_weight=0.0)


@pytest.mark.parametrize("as_folder", [True, False])
def test_save_load_round_trip(tmp_path, as_folder):
    torch.manual_seed(0)
    dim = DIMObjective(3, 8, estimator="jsd", critic_width=16, num_convs=2, global_weight=0.5,
                       mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    x, z = torch.rand(4, 3, 32, 32), torch.randn(4, 8)
    dim(x, z)  # one train-mode forward updates the BatchNorm running statistics, which must round-trip too
    target = tmp_path if as_folder else tmp_path / "my_critic.pt"
    save_dim_objective(dim, target)
    assert (tmp_path / ("critic.pt" if as_folder else "my_critic.pt")).is_file()
    loaded = load_dim_objective(target)
    assert loaded.config == dim.config
    dim.eval(), loaded.eval()
    torch.testing.assert_close(loaded.mi(x, z), dim.mi(x, z))


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match="train-encoder writes critic.pt"):
        load_dim_objective(tmp_path)
    save_checkpoint(tmp_path / "other.pt", {"state_dict": {}}, {"kind": "model"})
    with pytest.raises(CheckpointError, match="not a DIM critic"):
        load_dim_objective(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "bad.pt", {"state_dict": {"w": torch.zeros(1)}},
                    {"kind": "dim_objective", "kwargs": {"in_chans": 1, "z_dim": 4, "critic_width": 8}})
    with pytest.raises(CheckpointError, match="does not match"):
        load_dim_objective(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="needs a DIMObjective"):
        save_dim_objective(torch.nn.Linear(2, 2), tmp_path / "x.pt")
