"""Encoder ablations: which worst-case-MI training choices give the paper's MNIST effect, and at what cost.

Two studies share this protocol (docs/fidelity.md):

- ``fidelity-ablation``: the paper's text and the authors' released code differ in two places that shape the
  encoder (PAPER.md §2.3–2.4): whether the worst-case search's gradient passes through the critic's image
  branch (``through_critic``; the code detaches it) and how many strided convs that branch has
  (``num_convs``; the paper's Table 2: 3, the code: 2).
- ``search-ablation``: cheaper inner maximisations for encoder training (issue 12) against the paper's PGD-10:
  the same search with its forward passes in bf16 (``search_bf16``), the ``cpu`` preset's 5 steps of twice the
  step size (fp32 and bf16), and one FGSM step from a random start (Wong et al. 2020) on the MI objective.
  A variant is at parity when its robust head's PGD accuracy is within 2 points of the reference's.

Each trains one worst-case-MI encoder per (variant, seed) at one fixed work budget and measures it by

- (a) a standard MLP head (20 epochs on cached features): natural and PGD accuracy on the full test set;
- (b) a robust MLP head (PGD-AT, last iterate, the same number of steps as every other robust head here);
- (c) the encoder-only search distance ``‖g(x') − g(x)‖ / ‖g(x)‖`` of Algorithm 1 with the paper's PGD-10
  against the encoder's own critic, gradient through ``g`` only: how far an attacker who sees only the
  representation can move it (smaller: a more robust representation).

Runs are ordinary run folders under ``OUT/runs`` (cached and resumable), so seeds can run in separate
processes into one ``OUT`` (one torch thread each uses both cores of a 2-core machine) and a final call
without training (``summarise_ablation``) writes the table.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from robustmi.experiments.report import Report
from robustmi.experiments.runner import RunSpec, check_overrides, run_config, run_one
from robustmi.runs._atomic import atomic_write_text
from robustmi.runs.environment import environment_info

_BATCH = 128
PARITY_POINTS = 2.0  # issue 12: a cheaper search is kept when its robust head is this close in PGD accuracy


@dataclass(frozen=True)
class Ablation:
    """One study: encoder variants (name -> encoder-run fields for a dataset) and the one they are compared
    with (``reference``, or None)."""

    title: str
    variants: Callable[[str], dict[str, dict[str, Any]]]
    reference: str | None = None


def _fidelity_variants(dataset: str) -> dict[str, dict[str, Any]]:
    return {f"{'through' if tc else 'detached'}-{nc}conv": {"through_critic": tc, "num_convs": nc}
            for tc, nc in product((False, True), (2, 3))}


def search_variants(dataset: str) -> dict[str, dict[str, Any]]:
    """The encoder searches compared by ``search-ablation`` (and named by time_to_result's recipes), as
    encoder-run fields."""
    from robustmi.attacks import paper_attack
    from robustmi.runs import config_to_dict
    from robustmi.training.presets import cpu_search

    paper = config_to_dict(paper_attack(dataset))
    return {"pgd-10": {"attack": paper},  # the paper's search (the reference)
            "pgd-10-bf16": {"attack": paper, "search_bf16": True},  # its forward passes in bf16
            "pgd-5": {"attack": cpu_search(dataset)},  # the cpu preset's
            "pgd-5-bf16": {"attack": cpu_search(dataset), "search_bf16": True},  # its forward passes in bf16
            "fgsm-rs": {"attack": {**paper, "steps": 1, "step_size": 1.25 * paper["eps"],
                                   "random_start": True}}}


ABLATIONS = {
    "fidelity-ablation": Ablation("Fidelity ablation: worst-case-MI encoders", _fidelity_variants),
    "search-ablation": Ablation("Search ablation: cheaper worst-case searches for encoder training",
                                search_variants, reference="pgd-10"),
}


def _fields(steps: int) -> dict[str, Any]:
    """A step budget (work, never wall time) as run-config fields."""
    return {"max_steps": steps, "epochs": math.ceil(steps * _BATCH / 58000) + 1}


def search_distance(run_dir: Path, dataset: str, data_dir: str | None, samples: int = 1000) -> float:
    """Mean ``‖g(x') − g(x)‖ / ‖g(x)‖`` of Algorithm 1 (paper threat, encoder path only, own critic)."""
    import torch

    from robustmi.attacks import frozen_eval, paper_attack
    from robustmi.data import load_dataset
    from robustmi.mi import load_dim_objective
    from robustmi.mi.worst_case import worst_case_inputs
    from robustmi.models import load_model

    encoder, dim = load_model(run_dir), load_dim_objective(run_dir)
    images = load_dataset(dataset, "test", data_dir).images[:samples]
    attack, ratios = paper_attack(dataset), []
    with frozen_eval(encoder, dim):
        for start in range(0, images.shape[0] - _BATCH + 1, _BATCH):  # full batches: the DV negatives
            x = images[start : start + _BATCH]
            x_worst = worst_case_inputs(dim.mi, encoder, x, attack, through_critic=False).x
            with torch.no_grad():
                z, z_worst = encoder(x), encoder(x_worst)  # (B, D) each
            ratios.append(((z_worst - z).norm(dim=1) / z.norm(dim=1).clamp_min(1e-12)).mean().item())
    return statistics.fmean(ratios)


def run_ablation_seed(
    out_dir: str | Path,
    seed: int,
    *,
    study: str = "fidelity-ablation",
    budget: str = "cpu",
    dataset: str = "mnist",
    encoder_steps: int = 200,
    head_steps: int = 300,
    distance_samples: int = 1000,
    data_dir: str | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train and measure every variant of ``study`` for one seed; one record per variant (cached runs
    reused)."""
    runs, records = Path(out_dir) / "runs" / f"seed-{seed}", []
    common = {"seed": seed, "dataset": dataset, **({"data_dir": data_dir} if data_dir else {})}
    for name, settings in ABLATIONS[study].variants(dataset).items():
        enc_fields = {**common, **_fields(encoder_steps), "objective": "worst-case-mi", **settings}
        log(f"[{study}] seed {seed}: encoder {name} ({encoder_steps} steps)")
        enc_dir = runs / f"encoder-{name}"
        encoder = run_one(RunSpec(name, "encoder", enc_fields, "encoder"),
                          run_config("encoder", budget, dataset=dataset, fields=enc_fields,
                                     overrides=overrides), enc_dir)
        heads = {}
        for mode in ("standard", "robust"):
            fields = {**common, "encoder": str(enc_dir), "head": "mlp", "mode": mode}
            if mode == "robust":
                fields.update(_fields(head_steps), early_stop="none")
            log(f"[{study}] seed {seed}: {mode} MLP head on {name}")
            heads[mode] = run_one(RunSpec(f"{name}-{mode}", "probe", fields, f"probe-{mode}"),
                                  run_config("probe", budget, dataset=dataset, fields=fields,
                                             overrides=overrides), runs / f"probe-{name}-mlp-{mode}")
        distance = _cached(enc_dir / "search_distance.json",
                           lambda run=enc_dir: search_distance(run, dataset, data_dir, distance_samples))
        records.append({
            "variant": name, "settings": settings, "seed": seed,
            "encoder_wall_s": encoder.get("wall_s"), "encoder_cpu_s": encoder.get("cpu_s"),
            "encoder_steps": encoder_steps,
            "standard_natural": heads["standard"]["natural_accuracy"],
            "standard_pgd": heads["standard"]["adversarial_accuracy"],
            "robust_natural": heads["robust"]["natural_accuracy"],
            "robust_pgd": heads["robust"]["adversarial_accuracy"],
            "search_distance": distance,
            "eval_images": heads["robust"].get("evaluation", {}).get("num_samples"),
        })
    return records


def _cached(path: Path, compute: Callable[[], float]) -> float:
    if path.is_file():
        return float(json.loads(path.read_text(encoding="utf-8"))["value"])
    value = compute()
    atomic_write_text(path, json.dumps({"value": value}))
    return value


def summarise_ablation(out_dir: str | Path, records: list[dict[str, Any]],
                       study: str = "fidelity-ablation", dataset: str = "mnist") -> dict[str, Any]:
    """Mean ± std over seeds per variant (and, with a reference, each variant's robust-head PGD gap to it);
    writes OUT/ablation.json and OUT/report.md."""
    out, ablation = Path(out_dir), ABLATIONS[study]
    keys = ("standard_natural", "standard_pgd", "robust_natural", "robust_pgd", "search_distance",
            "encoder_wall_s", "encoder_cpu_s")
    table: dict[str, dict[str, Any]] = {}
    for name, settings in ablation.variants(dataset).items():
        rows = [r for r in records if r["variant"] == name]
        if not rows:
            continue
        stats = {}
        for k in keys:
            values = [float(r[k]) for r in rows if r.get(k) is not None]
            stats[k] = {"mean": statistics.fmean(values) if values else math.nan,
                        "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}
        table[name] = {"settings": settings, "seeds": [r["seed"] for r in rows], **stats}
    reference = table.get(ablation.reference) if ablation.reference else None
    for entry in table.values():
        if reference is not None:  # percentage points, mean over seeds
            gap = 100 * (entry["robust_pgd"]["mean"] - reference["robust_pgd"]["mean"])
            entry["robust_pgd_vs_reference"] = gap
            entry["at_parity"] = gap >= -PARITY_POINTS
    payload = {"study": study, "dataset": dataset, "reference": ablation.reference,
               "parity_points": PARITY_POINTS if ablation.reference else None, "variants": table,
               "records": records, "environment": environment_info()}  # versions, CPU capability, commit
    atomic_write_text(out / "ablation.json", json.dumps(payload, indent=2))
    report = Report(f"{ablation.title} ({dataset})")
    pct = lambda s: f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"  # noqa: E731
    header = ["variant", "seeds", "standard head nat %", "standard head PGD %", "robust head nat %",
              "robust head PGD %", "search distance", "encoder CPU min"]
    minutes = lambda s: "—" if math.isnan(s["mean"]) else f"{s['mean'] / 60:.1f}"  # noqa: E731 (older runs)
    rows_out = [[name, len(v["seeds"]), pct(v["standard_natural"]), pct(v["standard_pgd"]),
                 pct(v["robust_natural"]), pct(v["robust_pgd"]),
                 f"{v['search_distance']['mean']:.3f} ± {v['search_distance']['std']:.3f}",
                 minutes(v["encoder_cpu_s"])] for name, v in table.items()]
    if reference is not None:
        header.append(f"robust PGD vs {ablation.reference} (parity: within {PARITY_POINTS:g} points)")
        for row, v in zip(rows_out, table.values(), strict=True):
            row.append(f"{v['robust_pgd_vs_reference']:+.1f} ({'at parity' if v['at_parity'] else 'not'})")
    report.table(header, rows_out)
    report.write(out)
    return payload


# budget -> (encoder steps, robust-head steps, test images of the search distance)
STEPS = {"smoke": (3, 3, 256), "cpu": (200, 300, 1000)}


def reproduce_ablation(
    study: str,
    budget: str,
    out_dir: str | Path,
    *,
    trials: int = 2,
    only_seed: int | None = None,
    dataset: str = "mnist",
    data_dir: str | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or continue) ``study`` (a key of :data:`ABLATIONS`) for seeds ``0..trials-1`` (or just
    ``only_seed``) and write the table.

    The table covers every seed whose runs have finished, so ``only_seed`` lets separate processes share the
    seeds of one ``out_dir``; the last one to finish writes the complete table.
    """
    from robustmi.errors import ConfigError

    if study not in ABLATIONS:
        raise ConfigError(f"unknown ablation {study!r}; choose one of: {', '.join(ABLATIONS)}")
    if budget not in STEPS:
        raise ConfigError(f"the ablations have budgets {', '.join(STEPS)}, not {budget!r}")
    if trials < 1 or (only_seed is not None and not 0 <= only_seed < trials):
        raise ConfigError(f"--trials {trials} must be >= 1 and --seed in 0..{trials - 1}")
    check_overrides(overrides, ("encoder", "probe"))
    encoder_steps, head_steps, samples = STEPS[budget]
    out = Path(out_dir).resolve()  # absolute: probe configs name their encoder by path
    settings = dict(study=study, budget=budget, dataset=dataset, encoder_steps=encoder_steps,
                    head_steps=head_steps, distance_samples=samples, data_dir=data_dir, overrides=overrides)
    for seed in range(trials) if only_seed is None else (only_seed,):
        run_ablation_seed(out, seed, log=log, **settings)
    records = []
    names = ABLATIONS[study].variants(dataset)
    for seed in range(trials):  # every finished seed (cached runs are read back, nothing is trained here)
        if all((out / "runs" / f"seed-{seed}" / f"encoder-{name}" / "search_distance.json").is_file()
               for name in names):
            records += run_ablation_seed(out, seed, log=lambda _: None, **settings)
    return summarise_ablation(out, records, study, dataset)
