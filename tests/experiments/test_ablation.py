"""The fidelity ablation at the smoke budget: every variant trains, is measured, and lands in the table."""

from __future__ import annotations

import json

import torch

from robustmi.experiments.ablation import VARIANTS, reproduce_fidelity_ablation


def test_smoke_ablation_writes_a_table_of_every_variant(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        payload = reproduce_fidelity_ablation("smoke", tmp_path, trials=1, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    assert len(payload["variants"]) == len(VARIANTS) == 4
    for record in payload["records"]:
        assert 0 <= record["robust_pgd"] <= record["robust_natural"] <= 1
        assert 0 <= record["standard_pgd"] <= record["standard_natural"] <= 1
        assert record["search_distance"] >= 0
        run = tmp_path / "runs" / "seed-0" / f"encoder-{record['variant']}"
        config = json.loads((run / "results.json").read_text())["config"]
        assert config["through_critic"] == record["through_critic"]
        assert config["num_convs"] == record["num_convs"]
    assert (tmp_path / "ablation.json").is_file() and "detached-2conv" in (tmp_path / "report.md").read_text()
