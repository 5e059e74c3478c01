"""The bad-input matrix (issue 13): every case exits 2 with exactly one stderr line and no traceback, changes
no protected file, leaves no half-made output folder, and no crafted pickle or model spec ever executes.

One module-scoped "world" holds a finished run, an encoder run, crafted model files and run folders, broken
dataset files and config files; every file in it is hashed before and after each case.
"""

from __future__ import annotations

import json
import pickle
import shutil
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmi.cli import main as cli_main
from robustmi.models import create_model, save_model
from robustmi.runs import save_checkpoint

from ..data.files import idx_bytes, py2_pickle, write_svhn

SYNTH = ["--dataset", "synthetic-mnist"]
SMALL = ["train_limit=64", "batch_size=32", "epochs=1", "eval_limit=8"]


class Payload:
    """Unpickling this would write the marker file: the proof that a crafted pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def run_main(argv: list[str]) -> int:
    try:
        cli_main.main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def _write_modules(mods: Path, marker: Path) -> None:
    mods.mkdir()
    (mods / "bad_syntax_mod.py").write_text("def f(:\n    pass\n")
    (mods / "bad_value_mod.py").write_text("raise ValueError('broken\\nat import')\n")
    (mods / "nets.py").write_text(textwrap.dedent("""
        def returns_int():
            return 42

        def raises():
            raise RuntimeError("no GPU here")
    """))
    (mods / "payload.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
                                     "def make():\n    return None\n")


def _write_runs(w: Path, mods: Path) -> None:
    assert run_main(["train-supervised", "--arch", "baseline-h", *SYNTH, "--preset", "smoke", "--out",
                     str(w / "sup"), *SMALL]) == 0
    shutil.copytree(w / "sup", w / "corrupt-resume")
    (w / "corrupt-resume" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    (w / "corrupt-resume" / "results.json").unlink()
    save_model(create_model("baseline-h-encoder"), w / "enc")
    (w / "enc" / "config.yaml").write_text("dataset: synthetic-mnist\n")
    nan_model = create_model("baseline-h")
    torch.nn.init.constant_(nan_model.head[0].weight, float("nan"))
    save_model(nan_model, w / "nan-model")
    (w / "nan-model" / "config.yaml").write_text("dataset: synthetic-mnist\n")
    save_model(create_model("baseline-h"), w / "badcfg")
    (w / "badcfg" / "config.yaml").write_text("dataset: [unclosed\n")
    for name, spec in (("spec-evil", f"{mods / 'payload.py'}:make"), ("spec-relative", "payload.py:make"),
                       ("spec-module", "payload:make")):
        (w / name).mkdir()
        save_checkpoint(w / name / "model.pt", {"model": {"w": torch.zeros(1)}},
                        {"name": "factory", "kwargs": {"spec": spec}})
        (w / name / "config.yaml").write_text("dataset: synthetic-mnist\n")
    (w / "sidecar-evil").mkdir()
    torch.save({"model": {"w": torch.zeros(1)}}, w / "sidecar-evil" / "model.pt")
    (w / "sidecar-evil" / "model.json").write_text(json.dumps({"name": "factory", "kwargs": {
        "spec": f"{mods / 'payload.py'}:make"}}))
    (w / "sidecar-evil" / "config.yaml").write_text("dataset: synthetic-mnist\n")


def _write_files(w: Path, marker: Path) -> None:
    torch.save({"model": Payload(marker)}, w / "evil.pt")
    (w / "evil.pth").write_bytes(pickle.dumps(Payload(marker)))
    torch.save({"epoch": torch.tensor(3)}, w / "junk.pt")
    (w / "corrupt.pt").write_bytes(b"\x80\x02garbage")
    torch.save(create_model("baseline-h-linear").state_dict(), w / "linear-weights.pt")
    (w / "malformed.yaml").write_text("epochs: [1, 2\n")
    (w / "list.yaml").write_text("- 1\n- 2\n")
    (w / "unknown.yaml").write_text("stpes: 3\n")
    (w / "nan.yaml").write_text("lr: .nan\n")
    (w / "afile").write_text("a file, not a folder\n")


def _write_data(w: Path, marker: Path) -> None:
    idx = w / "data-idx" / "mnist"
    idx.mkdir(parents=True)
    (idx / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(2051, (10, 28, 28), b"\x00" * 100))
    (idx / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(2049, (10,), bytes(10)))
    big = w / "data-overflow" / "mnist"
    big.mkdir(parents=True)
    (big / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(2051, (2**32 - 1,) * 3, b""))
    (big / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(2049, (10,), bytes(10)))
    for name, content in (("data-cifar-evil", pickle.dumps(Payload(marker), protocol=2)),
                          ("data-cifar-trunc", py2_pickle({b"data": np.zeros((2, 3072), np.uint8),
                                                           b"labels": [1, 2]})[:200]),
                          ("data-cifar-labels", py2_pickle({b"data": np.zeros((2, 3072), np.uint8),
                                                            b"labels": [1, 99]}))):
        folder = w / name / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        (folder / "test_batch").write_bytes(content)
    write_svhn(w / "data-svhn-nan" / "svhn", "test", np.zeros((32, 32, 3, 2), np.uint8),
               np.array([[1.0], [np.nan]]))
    (w / "data-svhn-junk" / "svhn").mkdir(parents=True)
    (w / "data-svhn-junk" / "svhn" / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    w, mods, marker = root / "world", root / "mods", root / "markers" / "pwned"
    w.mkdir()
    (root / "empty").mkdir()
    marker.parent.mkdir()
    _write_modules(mods, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the smoke run's chance-accuracy flag
        _write_runs(w, mods)
    _write_files(w, marker)
    _write_data(w, marker)
    return {"w": w, "mods": mods, "marker": marker, "empty": root / "empty"}


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file's (inode, size, mtime): an atomic replace changes the inode, a write the mtime/size."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock" and "__pycache__" not in p.parts}


def test_snapshot_sees_a_rewrite(tmp_path) -> None:
    (tmp_path / "a").write_text("x")
    before = _snapshot(tmp_path)
    (tmp_path / "b").write_text("y")
    (tmp_path / "b").replace(tmp_path / "a")  # same size, new inode
    assert _snapshot(tmp_path) != before


T, P, S, E = "train-supervised", "train-probe", "train-encoder", "evaluate"
TS = [T, "--arch", "baseline-h", *SYNTH, "--preset", "smoke"]
TE = [S, *SYNTH, "--preset", "smoke"]
TP = [P, "--encoder", "{w}/enc", *SYNTH, "--preset", "smoke"]
EV = [E, "--model", "{w}/sup", "--attack", "paper", "--limit", "4"]
EVB = [E, "--model", "baseline-h", "--attack", "paper", "--limit", "4", "--out", "{o}"]
V = ["vulnerability", "--model", "{w}/sup", "--preset", "smoke", "--out", "{o}"]

CASES: dict[str, list[str]] = {
    # --- configs and overrides (train-supervised) ---
    "sup-unknown-key": [*TS, "--out", "{o}", "stpes=3"],
    "sup-lr-nan": [*TS, "--out", "{o}", "lr=.nan"],
    "sup-lr-inf": [*TS, "--out", "{o}", "lr=.inf"],
    "sup-lr-negative": [*TS, "--out", "{o}", "lr=-1"],
    "sup-lr-text": [*TS, "--out", "{o}", "lr=abc"],
    "sup-lr-div0": [*TS, "--out", "{o}", "lr=1/0"],
    "sup-epochs-0": [*TS, "--out", "{o}", "epochs=0"],
    "sup-batch-0": [*TS, "--out", "{o}", "batch_size=0"],
    "sup-batch-float": [*TS, "--out", "{o}", "batch_size=1.5"],
    "sup-seed-text": [*TS, "--out", "{o}", "seed=abc"],
    "sup-train-limit-huge": [*TS, "--out", "{o}", "train_limit=999999"],
    "sup-train-limit-0": [*TS, "--out", "{o}", "train_limit=0"],
    "sup-eval-limit-neg": [*TS, "--out", "{o}", "eval_limit=-3"],
    "sup-max-minutes-nan": [*TS, "--out", "{o}", "max_minutes=.nan"],
    "sup-malformed-override": [*TS, "--out", "{o}", "=3"],
    "sup-empty-key-part": [*TS, "--out", "{o}", "attack..eps=0.1"],
    "sup-scalar-as-section": [*TS, "--out", "{o}", "lr.x=1"],
    "sup-attack-steps-0": [*TS, "--out", "{o}", "attack.steps=0", "--mode", "robust"],
    "sup-attack-norm": [*TS, "--out", "{o}", "attack.norm=l7"],
    "sup-attack-eps-nan": [*TS, "--out", "{o}", "attack.eps=.nan"],
    "sup-attack-eps-above-pixel-range": [*TS, "--out", "{o}", "attack.eps=2"],
    "sup-attack-eps-text": [*TS, "--out", "{o}", "attack.eps=abc"],
    "sup-optimizer": [*TS, "--out", "{o}", "optimizer=rmsprop"],
    "sup-fast-standard": [*TS, "--out", "{o}", "fast=true"],
    "sup-momentum": [*TS, "--out", "{o}", "optimizer=sgd", "momentum=1.5"],
    "sup-milestones": [*TS, "--out", "{o}", "lr_milestones=abc"],
    "sup-eval-attack": [*TS, "--out", "{o}", "eval_attacks=[nope]", *SMALL],
    "sup-preset": [T, "--arch", "baseline-h", *SYNTH, "--preset", "nope", "--out", "{o}"],
    "sup-dataset": [T, "--arch", "baseline-h", "--dataset", "mnsit", "--preset", "smoke", "--out", "{o}"],
    "sup-arch": [T, "--arch", "resnet9000", *SYNTH, "--preset", "smoke", "--out", "{o}"],
    "sup-mode": [*TS, "--mode", "nope", "--out", "{o}"],
    "sup-config-missing": [*TS, "--config", "{w}/missing.yaml", "--out", "{o}"],
    "sup-config-malformed": [*TS, "--config", "{w}/malformed.yaml", "--out", "{o}"],
    "sup-config-list": [*TS, "--config", "{w}/list.yaml", "--out", "{o}"],
    "sup-config-unknown": [*TS, "--config", "{w}/unknown.yaml", "--out", "{o}"],
    "sup-config-nan": [*TS, "--config", "{w}/nan.yaml", "--out", "{o}"],
    "sup-out-is-file": [*TS, "--out", "{w}/afile"],
    "sup-finished-no-resume": [*TS, "--out", "{w}/sup"],
    "sup-resume-other-arch": [T, "--arch", "baseline-h-linear", *SYNTH, "--preset", "smoke", "--out",
                              "{w}/sup", "--resume", *SMALL, "epochs=2"],
    "sup-resume-corrupt": [*TS, "--out", "{w}/corrupt-resume", "--resume", *SMALL],
    "sup-resume-lr-nan": [*TS, "--out", "{w}/sup", "--resume", "lr=.nan"],
    "sup-bad-data-dir": [T, "--arch", "baseline-h", "--dataset", "mnist", "--preset", "smoke", "--out", "{o}",
                         "data_dir={w}/no-such-dir"],
    # --- train-encoder ---
    "enc-objective": [*TE, "--objective", "nope", "--out", "{o}"],
    "enc-critic-width": [*TE, "--out", "{o}", "critic_width=0"],
    "enc-mi-eval": [*TE, "--out", "{o}", "mi_eval_samples=-1"],
    "enc-arch": [*TE, "--out", "{o}", "arch=nope", *SMALL],
    "enc-attack-step": [*TE, "--out", "{o}", "attack.step_size=-1"],
    "enc-num-convs": [*TE, "--out", "{o}", "num_convs=0"],
    # --- train-probe ---
    "probe-no-encoder": [P, *SYNTH, "--preset", "smoke", "--out", "{o}"],
    "probe-missing-encoder": [P, "--encoder", "{w}/nope", *SYNTH, "--preset", "smoke", "--out", "{o}"],
    "probe-pickle-encoder": [P, "--encoder", "{w}/evil.pt", *SYNTH, "--preset", "smoke", "--out", "{o}"],
    "probe-spec-encoder": [P, "--encoder", "{w}/spec-evil", *SYNTH, "--preset", "smoke", "--out", "{o}"],
    "probe-corrupt-encoder": [P, "--encoder", "{w}/corrupt.pt", *SYNTH, "--preset", "smoke", "--out", "{o}"],
    "probe-head": [*TP, "--head", "nope", "--out", "{o}"],
    "probe-mode": [*TP, "--mode", "nope", "--out", "{o}"],
    "probe-early-stop": [*TP, "--early-stop", "nope", "--out", "{o}"],
    "probe-val-size": [*TP, "--early-stop", "adversarial", "--out", "{o}", "val_size=0"],
    "probe-val-size-huge": [*TP, "--early-stop", "adversarial", "--out", "{o}", *SMALL, "val_size=64"],
    # --- evaluate: model files and specs ---
    "eval-missing-model": [E, "--model", "{w}/nope", *SYNTH, "--out", "{o}"],
    "eval-pickle-model": [E, "--model", "{w}/evil.pt", *SYNTH, "--out", "{o}"],
    "eval-raw-pickle-model": [E, "--model", "{w}/evil.pth", *SYNTH, "--out", "{o}"],
    "eval-spec-model": [E, "--model", "{w}/spec-evil", "--out", "{o}"],
    "eval-relative-spec": [E, "--model", "{w}/spec-relative", "--out", "{o}"],
    "eval-module-spec": [E, "--model", "{w}/spec-module", "--out", "{o}"],
    "eval-sidecar-spec": [E, "--model", "{w}/sidecar-evil", "--out", "{o}"],
    "eval-module-missing": [E, "--model", "no_such_module_xyz:f", *SYNTH, "--out", "{o}"],
    "eval-module-syntax": [E, "--model", "bad_syntax_mod:f", *SYNTH, "--out", "{o}"],
    "eval-module-raises": [E, "--model", "bad_value_mod:f", *SYNTH, "--out", "{o}"],
    "eval-file-syntax": [E, "--model", "{m}/bad_syntax_mod.py:f", *SYNTH, "--out", "{o}"],
    "eval-factory-missing": [E, "--model", "{m}/nets.py:absent", *SYNTH, "--out", "{o}"],
    "eval-factory-int": [E, "--model", "{m}/nets.py:returns_int", *SYNTH, "--out", "{o}"],
    "eval-factory-raises": [E, "--model", "{m}/nets.py:raises", *SYNTH, "--out", "{o}"],
    "eval-factory-no-file": [E, "--model", "{m}/absent.py:f", *SYNTH, "--out", "{o}"],
    "eval-corrupt-model": [E, "--model", "{w}/corrupt.pt", *SYNTH, "--out", "{o}"],
    "eval-junk-model": [E, "--model", "{w}/junk.pt", *SYNTH, "--out", "{o}"],
    "eval-encoder": [E, "--model", "{w}/enc", "--limit", "4", "--out", "{o}"],
    "eval-wrong-input": [*EVB, "--dataset", "synthetic-cifar"],
    "eval-nan-model": [E, "--model", "{w}/nan-model", "--out", "{o}"],
    "rv-nan-model": ["vulnerability", "--model", "{w}/nan-model", "--preset", "smoke", "--out", "{o}"],
    "rv-wrong-input": ["vulnerability", "--model", "baseline-h", "--dataset", "synthetic-cifar", "--out",
                       "{o}"],
    "eval-no-dataset": [E, "--model", "baseline-h", "--out", "{o}"],
    "eval-bad-run-config": [E, "--model", "{w}/badcfg", "--out", "{o}"],
    "eval-no-out": [E, "--model", "baseline-h", *SYNTH],
    "eval-seed": [*EV, "--seed", "-1", "--out", "{o}"],
    "eval-seed-text": [*EV, "--seed", "abc", "--out", "{o}"],
    "eval-limit": [*EV[:-2], "--limit", "0", "--out", "{o}"],
    "eval-batch": [*EV, "--batch-size", "0", "--out", "{o}"],
    "eval-attack": [E, "--model", "{w}/sup", "--attack", "nope", "--out", "{o}"],
    "eval-dataset": [*EV, "--dataset", "mnsit", "--out", "{o}"],
    "eval-split": [*EV, "--split", "validation", "--out", "{o}"],
    "eval-unknown-option": [*EV, "--epsilon", "0.3", "--out", "{o}"],
    "eval-finished-out": [*EV, "--out", "{w}/sup"],
    "eval-weights-missing": [*EVB, *SYNTH, "--weights", "{w}/nope.pt"],
    "eval-weights-pickle": [*EVB, *SYNTH, "--weights", "{w}/evil.pt"],
    "eval-weights-junk": [*EVB, *SYNTH, "--weights", "{w}/junk.pt"],
    "eval-weights-arch": [*EVB, *SYNTH, "--weights", "{w}/linear-weights.pt"],
    "eval-weights-corrupt": [*EVB, *SYNTH, "--weights", "{w}/corrupt.pt"],
    # --- evaluate: dataset files ---
    "data-missing-dir": [*EVB, "--dataset", "mnist", "--data-dir", "{w}/no-such-dir"],
    "data-idx-truncated": [*EVB, "--dataset", "mnist", "--data-dir", "{w}/data-idx"],
    "data-idx-overflow": [*EVB, "--dataset", "mnist", "--data-dir", "{w}/data-overflow"],
    "data-cifar-pickle": [*EVB, "--dataset", "cifar10", "--data-dir", "{w}/data-cifar-evil"],
    "data-cifar-truncated": [*EVB, "--dataset", "cifar10", "--data-dir", "{w}/data-cifar-trunc"],
    "data-cifar-labels": [*EVB, "--dataset", "cifar10", "--data-dir", "{w}/data-cifar-labels"],
    "data-cifar-absent": [*EVB, "--dataset", "cifar10", "--data-dir", "{w}/data-idx"],
    "data-svhn-nan": [*EVB, "--dataset", "svhn", "--data-dir", "{w}/data-svhn-nan"],
    "data-svhn-junk": [*EVB, "--dataset", "svhn", "--data-dir", "{w}/data-svhn-junk"],
    # --- vulnerability ---
    "rv-config-malformed": [*V, "--config", "{w}/malformed.yaml"],
    "rv-config-list": [*V, "--config", "{w}/list.yaml"],
    "rv-config-missing": [*V, "--config", "{w}/missing.yaml"],
    "rv-device": [*V, "--device", "tpu"],
    "rv-norm-l7": [*V, "attack.norm=l7"],  # refused before any critic trains
    "rv-eps-above-pixel-range": [*V, "attack.eps=2"],
    "rv-flat-eps": [*V, "eps=0.1"],  # the threat is spelled attack.eps everywhere
    "rv-unknown-setting": [*V, "nope=1"],
    "rv-bare-argument": [*V, "foo"],
    "rv-per-neuron-no-layer": [*V, "--per-neuron"],
    "rv-layer": [*V, "--layer", "no.such.layer"],
    "rv-pickle-model": ["vulnerability", "--model", "{w}/evil.pt", *SYNTH, "--out", "{o}"],
    "rv-spec-model": ["vulnerability", "--model", "{w}/spec-evil", "--out", "{o}"],
    "rv-preset": [*V[:3], "--preset", "nope", "--out", "{o}"],
    "rv-epochs-nan": [*V, "epochs=.nan"],
    "rv-no-out": ["vulnerability", "--model", "baseline-h", *SYNTH],
    # --- experiments, saliency, usage ---
    "reproduce-target": ["reproduce", "nope-table", "--out", "{o}"],
    "demo-scale": ["demo", "--scale", "0", "--out", "{o}"],
    "demo-unknown-override": ["demo", "--out", "{o}", "critic_widht=3"],  # refused before anything trains
    "reproduce-unknown-override": ["reproduce", "mnist-table", "--budget", "smoke", "--out", "{o}", "nope=1"],
    "reproduce-bare-argument": ["reproduce", "mnist-table", "--budget", "smoke", "--out", "{o}", "lr"],
    "reproduce-jobs": ["reproduce", "mnist-table", "--jobs", "0", "--out", "{o}"],
    "saliency-pickle": ["saliency", "--model", "{w}/evil.pt", *SYNTH, "--out", "{o}"],
    "unknown-command": ["trian-encoder", "--out", "{o}"],
    "missing-out": [T, "--arch", "baseline-h", *SYNTH],
}
if torch.cuda.is_available():
    CASES["rv-device"] = [*V, "--device", "cuda:99"]
else:
    CASES["rv-device-cuda"] = [*V, "--device", "cuda"]


def test_matrix_is_large_enough() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case: str, world, capsys, monkeypatch) -> None:
    w, mods, marker = world["w"], world["mods"], world["marker"]
    monkeypatch.chdir(mods)  # a relative spec would resolve here, next to the payload
    monkeypatch.syspath_prepend(str(mods))
    monkeypatch.setenv("ROBUSTMI_DATA", str(world["empty"]))  # only the files a case names
    out = w / f"out-{case}"
    argv = [a.format(w=w, m=mods, o=out) for a in CASES[case]]
    before = _snapshot(w)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = run_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("robustmi: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert _snapshot(w) == before  # nothing protected changed
    assert not out.exists()  # no half-made folder
    assert not marker.exists()  # nothing crafted ran
