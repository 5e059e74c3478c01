"""Fidelity ablation: which worst-case-MI training choices give the paper's MNIST effect (docs/fidelity.md).

The paper's text and the authors' released code differ in two places that shape the encoder (PAPER.md
§2.3–2.4): whether the worst-case search's gradient passes through the critic's image branch
(``through_critic``; the code detaches it) and how many strided convs that branch has (``num_convs``; the
paper's Table 2: 3, the code: 2). This study trains one worst-case-MI encoder per (through_critic, num_convs,
seed) at one fixed work budget and measures each by

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
from itertools import product
from pathlib import Path
from typing import Any

from robustmi.experiments.report import Report
from robustmi.experiments.runner import RunSpec, check_overrides, run_config, run_one
from robustmi.runs._atomic import atomic_write_text
from robustmi.runs.environment import environment_info

VARIANTS: tuple[tuple[bool, int], ...] = tuple(product((False, True), (2, 3)))  # (through_critic, num_convs)
_BATCH = 128


def _name(through_critic: bool, num_convs: int) -> str:
    return f"{'through' if through_critic else 'detached'}-{num_convs}conv"


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
    budget: str = "cpu",
    dataset: str = "mnist",
    encoder_steps: int = 200,
    head_steps: int = 300,
    distance_samples: int = 1000,
    data_dir: str | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train and measure every variant for one seed; returns one record per variant (cached runs reused)."""
    runs, records = Path(out_dir) / "runs" / f"seed-{seed}", []
    common = {"seed": seed, "dataset": dataset, **({"data_dir": data_dir} if data_dir else {})}
    for through_critic, num_convs in VARIANTS:
        name = _name(through_critic, num_convs)
        enc_fields = {**common, **_fields(encoder_steps), "objective": "worst-case-mi",
                      "through_critic": through_critic, "num_convs": num_convs}
        log(f"[ablation] seed {seed}: encoder {name} ({encoder_steps} steps)")
        enc_dir = runs / f"encoder-{name}"
        encoder = run_one(RunSpec(name, "encoder", enc_fields, "encoder"),
                          run_config("encoder", budget, dataset=dataset, fields=enc_fields,
                                     overrides=overrides), enc_dir)
        heads = {}
        for mode in ("standard", "robust"):
            fields = {**common, "encoder": str(enc_dir), "head": "mlp", "mode": mode}
            if mode == "robust":
                fields.update(_fields(head_steps), early_stop="none")
            log(f"[ablation] seed {seed}: {mode} MLP head on {name}")
            heads[mode] = run_one(RunSpec(f"{name}-{mode}", "probe", fields, f"probe-{mode}"),
                                  run_config("probe", budget, dataset=dataset, fields=fields,
                                             overrides=overrides), runs / f"probe-{name}-mlp-{mode}")
        distance = _cached(enc_dir / "search_distance.json",
                           lambda run=enc_dir: search_distance(run, dataset, data_dir, distance_samples))
        records.append({
            "variant": name, "through_critic": through_critic, "num_convs": num_convs, "seed": seed,
            "encoder_wall_s": encoder.get("wall_s"), "encoder_steps": encoder_steps,
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


def summarise_ablation(out_dir: str | Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds per variant; writes OUT/ablation.json and OUT/ablation.md."""
    out = Path(out_dir)
    keys = ("standard_natural", "standard_pgd", "robust_natural", "robust_pgd", "search_distance",
            "encoder_wall_s")
    table: dict[str, dict[str, Any]] = {}
    for tc, nc in VARIANTS:
        rows = [r for r in records if (r["through_critic"], r["num_convs"]) == (tc, nc)]
        if not rows:
            continue
        stats = {}
        for k in keys:
            values = [float(r[k]) for r in rows if r.get(k) is not None]
            stats[k] = {"mean": statistics.fmean(values) if values else math.nan,
                        "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}
        table[_name(tc, nc)] = {"through_critic": tc, "num_convs": nc, "seeds": [r["seed"] for r in rows],
                                **stats}
    payload = {"variants": table, "records": records}
    payload["environment"] = environment_info()  # versions, CPU capability, git commit
    atomic_write_text(out / "ablation.json", json.dumps(payload, indent=2))
    report = Report("Fidelity ablation: worst-case-MI encoders (MNIST, ε = 0.3)")
    pct = lambda s: f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"  # noqa: E731
    report.table(
        ["variant", "seeds", "standard head nat %", "standard head PGD %", "robust head nat %",
         "robust head PGD %", "search distance", "encoder min"],
        [[name, len(v["seeds"]), pct(v["standard_natural"]), pct(v["standard_pgd"]), pct(v["robust_natural"]),
          pct(v["robust_pgd"]), f"{v['search_distance']['mean']:.3f} ± {v['search_distance']['std']:.3f}",
          f"{v['encoder_wall_s']['mean'] / 60:.1f}"] for name, v in table.items()],
    )
    report.write(out)
    return payload


# budget -> (encoder steps, robust-head steps, test images of the search distance)
STEPS = {"smoke": (3, 3, 256), "cpu": (200, 300, 1000)}


def reproduce_fidelity_ablation(
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
    """Run (or continue) the ablation for seeds ``0..trials-1`` (or just ``only_seed``) and write the table.

    The table covers every seed whose runs have finished, so ``only_seed`` lets separate processes share the
    seeds of one ``out_dir``; the last one to finish writes the complete table.
    """
    from robustmi.errors import ConfigError

    if budget not in STEPS:
        raise ConfigError(f"the fidelity ablation has budgets {', '.join(STEPS)}, not {budget!r}")
    if trials < 1 or (only_seed is not None and not 0 <= only_seed < trials):
        raise ConfigError(f"--trials {trials} must be >= 1 and --seed in 0..{trials - 1}")
    check_overrides(overrides, ("encoder", "probe"))
    encoder_steps, head_steps, samples = STEPS[budget]
    out = Path(out_dir).resolve()  # absolute: probe configs name their encoder by path
    for seed in range(trials) if only_seed is None else (only_seed,):
        run_ablation_seed(out, seed, budget=budget, dataset=dataset, encoder_steps=encoder_steps,
                          head_steps=head_steps, distance_samples=samples, data_dir=data_dir,
                          overrides=overrides, log=log)
    records = []
    for seed in range(trials):  # every finished seed (cached runs are read back, nothing is trained here)
        done = all((out / "runs" / f"seed-{seed}" / f"encoder-{_name(*v)}" / "search_distance.json").is_file()
                   for v in VARIANTS)
        if done:
            records += run_ablation_seed(out, seed, budget=budget, dataset=dataset,
                                         encoder_steps=encoder_steps, head_steps=head_steps,
                                         distance_samples=samples, data_dir=data_dir, overrides=overrides,
                                         log=lambda _: None)
    return summarise_ablation(out, records)
