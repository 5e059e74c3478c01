"""The encoder ablations at the smoke budget: every variant trains with its settings, is measured, and lands
in the table; the search ablation compares each search with the paper's PGD-10."""

from __future__ import annotations

import json

import pytest
import torch

from robustmi.errors import ConfigError
from robustmi.experiments.ablation import ABLATIONS, PARITY_POINTS, reproduce_ablation


def _smoke(study: str, out) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return reproduce_ablation(study, "smoke", out, trials=1, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)


def _assert_records(payload: dict, out) -> None:
    for record in payload["records"]:
        assert 0 <= record["robust_pgd"] <= record["robust_natural"] <= 1
        assert 0 <= record["standard_pgd"] <= record["standard_natural"] <= 1
        assert record["search_distance"] >= 0
        assert record["encoder_cpu_s"] > 0 and record["encoder_wall_s"] > 0  # the report shows CPU minutes
        run = out / "runs" / "seed-0" / f"encoder-{record['variant']}"
        config = json.loads((run / "results.json").read_text())["config"]
        for key, value in record["settings"].items():  # the variant's settings reached its encoder run
            assert config[key] == value, key


def test_smoke_fidelity_ablation_writes_a_table_of_every_variant(tmp_path):
    payload = _smoke("fidelity-ablation", tmp_path)
    assert set(payload["variants"]) == {"detached-2conv", "detached-3conv", "through-2conv", "through-3conv"}
    _assert_records(payload, tmp_path)
    assert (tmp_path / "ablation.json").is_file() and "detached-2conv" in (tmp_path / "report.md").read_text()


def test_smoke_search_ablation_compares_with_the_papers_search(tmp_path):
    payload = _smoke("search-ablation", tmp_path)
    assert list(payload["variants"]) == ["pgd-10", "pgd-10-bf16", "pgd-5", "pgd-5-bf16", "fgsm-rs"] \
        and payload["reference"] == "pgd-10"
    _assert_records(payload, tmp_path)
    steps = {name: v["settings"]["attack"]["steps"] for name, v in payload["variants"].items()}
    assert steps == {"pgd-10": 10, "pgd-10-bf16": 10, "pgd-5": 5, "pgd-5-bf16": 5, "fgsm-rs": 1}
    assert all(payload["variants"][v]["settings"]["search_bf16"] for v in ("pgd-10-bf16", "pgd-5-bf16"))
    assert payload["variants"]["fgsm-rs"]["settings"]["attack"]["random_start"] is True
    assert payload["variants"]["pgd-10"]["robust_pgd_vs_reference"] == 0.0
    for v in payload["variants"].values():
        assert v["at_parity"] == (v["robust_pgd_vs_reference"] >= -PARITY_POINTS)
    assert "parity" in (tmp_path / "report.md").read_text()


def test_unknown_ablation_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="search-ablation"):
        reproduce_ablation("no-ablation", "smoke", tmp_path)
    assert set(ABLATIONS) == {"fidelity-ablation", "search-ablation"}
