"""The paper's downstream-classification tables (P Table 1, S Tables 3 and 5) as data.

Each table maps a row key to ``{column: (mean, std)}``; columns are ``mlp_nat``, ``mlp_adv``, ``linear_nat``,
``linear_adv`` (accuracy in %, adversarial = PGD with the paper's per-dataset settings). Row keys name the
protocol: ``<encoder>/<head mode>``; ``supervised/<mode>`` rows are end-to-end Baseline-H models.
"""

from __future__ import annotations

COLUMNS: tuple[str, ...] = ("mlp_nat", "mlp_adv", "linear_nat", "linear_adv")

ROW_LABELS: dict[str, str] = {
    "mi/standard": "Hjelm et al. (DIM) + standard head",
    "mi/robust": "Hjelm et al. (DIM) + robust head",
    "worst-case-mi/standard": "Ours (worst-case MI) + standard head",
    "worst-case-mi/early-stop": "Ours (worst-case MI) + standard head (E.S.)",
    "worst-case-mi/robust": "Ours (worst-case MI) + robust head",
    "supervised/standard": "Fully-supervised standard",
    "supervised/robust": "Fully-supervised robust",
}

Table = dict[str, dict[str, tuple[float, float]]]


def _rows(values: dict[str, tuple[float, ...]]) -> Table:
    """``{row: (mlp_nat, std, mlp_adv, std, linear_nat, std, linear_adv, std)}`` -> Table."""
    return {
        row: {col: (v[2 * i], v[2 * i + 1]) for i, col in enumerate(COLUMNS)} for row, v in values.items()
    }


PAPER_TABLES: dict[str, Table] = {
    "mnist": _rows(
        {
            "mi/standard": (96.96, 0.35, 0.00, 0.00, 84.88, 1.11, 0.00, 0.00),
            "mi/robust": (44.99, 14.49, 16.70, 2.22, 11.35, 0.00, 11.35, 0.00),
            "worst-case-mi/standard": (96.67, 0.12, 9.97, 1.88, 82.10, 0.37, 3.69, 0.55),
            "worst-case-mi/early-stop": (94.68, 0.93, 12.79, 2.24, 77.72, 2.47, 4.73, 1.29),
            "worst-case-mi/robust": (95.05, 0.19, 60.64, 1.82, 73.99, 1.16, 30.55, 1.34),
            "supervised/standard": (99.13, 0.23, 0.45, 0.33, 99.13, 0.04, 0.00, 0.00),
            "supervised/robust": (99.25, 0.05, 95.73, 0.09, 99.21, 0.06, 95.29, 0.18),
        }
    ),
    "cifar10": _rows(
        {
            "mi/standard": (58.77, 0.22, 0.22, 0.08, 47.01, 0.53, 0.15, 0.03),
            "mi/robust": (29.75, 1.49, 15.08, 0.63, 22.79, 1.42, 10.28, 0.52),
            "worst-case-mi/standard": (62.54, 0.12, 14.06, 0.69, 50.29, 0.58, 10.98, 0.49),
            "worst-case-mi/early-stop": (51.59, 3.34, 27.53, 0.81, 48.55, 0.63, 13.52, 0.16),
            "worst-case-mi/robust": (52.34, 0.17, 31.52, 0.31, 43.55, 0.10, 25.15, 0.10),
            "supervised/standard": (86.33, 0.17, 0.07, 0.02, 86.36, 0.13, 0.02, 0.01),
            "supervised/robust": (70.71, 0.58, 40.50, 0.27, 72.44, 0.59, 39.98, 0.16),
        }
    ),
    "svhn": _rows(
        {
            "mi/standard": (50.15, 0.89, 0.00, 0.00, 38.94, 1.52, 0.00, 0.00),
            "mi/robust": (19.59, 0.00, 19.59, 0.00, 19.59, 0.00, 19.59, 0.00),
            "worst-case-mi/standard": (74.32, 0.49, 26.29, 1.41, 58.37, 0.54, 21.62, 0.91),
            "worst-case-mi/early-stop": (71.85, 0.59, 29.59, 0.83, 54.76, 0.86, 25.00, 0.53),
            "worst-case-mi/robust": (68.25, 0.83, 40.23, 0.83, 49.04, 0.79, 30.56, 0.38),
            "supervised/standard": (91.97, 0.13, 9.77, 1.58, 91.33, 0.15, 9.29, 1.73),
            "supervised/robust": (90.14, 0.83, 65.35, 0.44, 89.60, 0.54, 64.48, 1.06),
        }
    ),
}

# reproduce target -> dataset
# Fashion-MNIST: the paper has a table too, but its numbers are not in PAPER.md; the report shows ours only.
TABLE_DATASETS: dict[str, str] = {"mnist-table": "mnist", "fashion-mnist-table": "fashion-mnist",
                                  "cifar10-table": "cifar10", "svhn-table": "svhn"}
