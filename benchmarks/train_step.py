"""Benchmark training steps: ms/step, samples/s, achieved GFLOP/s vs a measured matmul ceiling, peak memory.

Cases (real MNIST, batch 128 unless ``--batch-size``), each in fp32 and with bf16 autocast for the training
forward; the worst-case rows' bf16 also runs the encoder's search in bf16 (``bf16=true search_bf16=true``).
Classifier attacks stay fp32, so the robust probe's bf16 covers its update only and the PGD evaluation batch
has no bf16 row:

- ``dim``: one standard DIM step (encoder + critic update), the paper preset's critic (width 2048, the
  authors' 2 convs, Adam 1e-4: the authors' math);
- ``worst-case-mi``: one worst-case-MI step with the paper's MNIST search (ε 0.3, 10 steps of 0.1);
- ``dim-cpu`` / ``worst-case-mi-cpu``: the same with the ``cpu`` preset (critic width 512, 5 search steps);
- ``robust-probe``: one PGD-AT step of an MLP head on a frozen Baseline-H encoder (PGD-10, ε 0.3);
- ``pgd-eval``: PGD-10 (ε 0.3, step 0.1) against a Baseline-H classifier in eval mode, no update.

FLOPs are counted over one step with the formulas of ``torch.utils.flop_counter`` (matmuls and convolutions,
forward and backward, attack iterations included) by a small dispatch mode: ``FlopCounterMode`` itself
tracks modules with backward hooks that fail under the attacks' ``torch.autograd.grad``. The ceiling is the
best of a few large square matmuls at the same thread count. Peak memory is the process's maximum resident
set (``resource.getrusage``): each case runs in its own fresh process, so the number is that case's peak
(including some 600 MB of torch and the MNIST training set).

``--profile`` instead profiles one step of each case (fp32) with ``torch.profiler`` and splits its time into
matrix products (convolutions, their backward, matmuls: where the FLOPs are) and everything else
(normalisation, activations, copies, elementwise updates): the matrix products' own GFLOP/s against the
ceiling says how far the step could go by speeding up the products alone, the rest's share how much other work
bounds it. Written to ``train_step_profile.json`` beside ``--out``.

Usage:
    python benchmarks/train_step.py [--threads 2] [--steps 5] [--cases dim,worst-case-mi] [--out PATH]
    python benchmarks/train_step.py --profile [--cases worst-case-mi] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

CASES = ("dim", "worst-case-mi", "dim-cpu", "worst-case-mi-cpu", "robust-probe", "pgd-eval")
DEFAULT_OUT = Path(__file__).parent / "results" / "train_step.json"


def matmul_ceiling(dtype_name: str, threads: int, size: int = 2048, reps: int = 5) -> float:
    """Best GFLOP/s of ``size``×``size`` matmuls (2·n³ FLOPs each) in ``dtype_name``."""
    import torch

    torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


class FlopCount:
    """Context manager summing the FLOPs of every dispatched op with a known formula (matmul, conv, ...)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        total = {"flops": 0}

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                formula = flop_registry.get(func._overloadpacket)
                if formula is not None:
                    total["flops"] += formula(*args, **kwargs, out_val=out)
                return out

        self.mode, self.total = _Mode(), total

    def __enter__(self) -> FlopCount:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.mode.__exit__(*exc)

    @property
    def flops(self) -> int:
        return self.total["flops"]


def _build(case: str, bf16: bool, batch_size: int):
    """The step callable (no arguments) of ``case`` and its batch, built through robustmi's own classes."""
    import torch

    from robustmi.attacks import classifier_objective, frozen_eval, pgd
    from robustmi.data import load_dataset
    from robustmi.models import Classifier, create_head, create_model
    from robustmi.training import (
        AttackSettings,
        ClassifierStep,
        CrossEntropyLoss,
        EncoderStep,
        MILoss,
        build_encoder_and_critic,
        get_preset,
    )

    data = load_dataset("mnist", "train")
    x, y = data.images[:batch_size], data.labels[:batch_size]

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    if case.startswith(("dim", "worst-case-mi")):
        cfg = get_preset("encoder", "cpu" if case.endswith("-cpu") else "paper", "mnist")
        encoder, dim = build_encoder_and_critic(cfg)
        optimizer = torch.optim.Adam([*encoder.parameters(), *dim.parameters()], lr=1e-4)
        attack = None if case.startswith("dim") else cfg.attack
        step = EncoderStep(encoder, dim, MILoss(encoder, dim), attack, autocast,
                           search_autocast=autocast if bf16 else None)
    elif case == "robust-probe":
        encoder = create_model("baseline-h-encoder", dataset="mnist").eval()
        model = Classifier(encoder, create_head("mlp", 64, 10))
        model.encoder.requires_grad_(False)
        optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-4)
        step = ClassifierStep(model, CrossEntropyLoss(model), AttackSettings(0.3, "linf", 10, 0.1), autocast)
    else:
        model = create_model("baseline-h", dataset="mnist").eval()

        def evaluate() -> None:
            with frozen_eval(model):
                pgd(classifier_objective(model, y), x, eps=0.3, steps=10, step_size=0.1)

        return evaluate

    def train_step() -> None:  # what Engine._train_step does
        optimizer.zero_grad(set_to_none=True)
        loss, _ = step(x, y)
        loss.backward()
        optimizer.step()

    return train_step


def _warm_step(case: str, bf16: bool, threads: int, batch_size: int):
    """``case``'s step callable after a warm-up (allocations, first-call overheads) and its FLOPs per step."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fn = _build(case, bf16, batch_size)
    fn()
    with FlopCount() as counter:
        fn()
    return fn, counter.flops


def run_case(case: str, bf16: bool, threads: int, steps: int, batch_size: int, queue) -> None:
    """Time ``case`` in this (fresh) process and put its measurements on ``queue``."""
    fn, flops = _warm_step(case, bf16, threads, batch_size)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: ru_maxrss in KiB
    queue.put({"case": case, "dtype": "bf16" if bf16 else "fp32", "ms_per_step": 1e3 * median,
               "ms_min": 1e3 * min(times), "samples_per_s": batch_size / median,
               "gflop_per_step": flops / 1e9, "gflops": flops / median / 1e9, "peak_rss_mb": peak_mb,
               "steps_timed": steps})


MATRIX_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::bmm", "aten::mm",
              "aten::addmm", "aten::_convolution", "aten::linear_backward")
"""Ops whose self time is matrix-product work (their FLOPs are what :class:`FlopCount` counts)."""


def profile_case(case: str, threads: int, batch_size: int, queue) -> None:
    """Profile one fp32 step of ``case`` in this (fresh) process: matrix-product share and top ops."""
    from torch.profiler import ProfilerActivity, profile

    fn, flops = _warm_step(case, False, threads, batch_size)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
    ops = [{"op": e.key, "shapes": str(e.input_shapes)[:120], "calls": e.count,
            "self_s": e.self_cpu_time_total / 1e6} for e in prof.key_averages(group_by_input_shape=True)]
    ops.sort(key=lambda o: -o["self_s"])
    total = sum(o["self_s"] for o in ops)
    matrix = sum(o["self_s"] for o in ops if o["op"] in MATRIX_OPS)
    queue.put({"case": case, "wall_s": wall, "profiled_self_s": total, "matrix_s": matrix,
               "matrix_share": matrix / total, "gflop_per_step": flops / 1e9,
               "matrix_gflops": flops / matrix / 1e9, "top_ops": ops[:12]})


def _profile(cases: list[str], threads: int, batch_size: int, out: Path) -> None:
    """``--profile``: profile each case in a fresh process; print and write the split and the top ops."""
    ceiling = _in_fresh_process(_ceiling_worker, "fp32", threads)
    rows = [_in_fresh_process(profile_case, case, threads, batch_size) for case in cases]
    for row in rows:
        row["matrix_fraction_of_fp32_ceiling"] = row["matrix_gflops"] / ceiling
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(threads),
              "load_average_after": load_average(), "batch_size": batch_size,
              "matmul_ceiling_gflops": {"fp32": ceiling}, "rows": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fp32 matmul ceiling {ceiling:.0f} GFLOP/s ({threads} threads), load average {load_average()}")
    for r in rows:
        print(f"\n{r['case']}: step {r['wall_s']:.2f} s, matrix products {r['matrix_s']:.2f} s "
              f"({100 * r['matrix_share']:.0f} %) at {r['matrix_gflops']:.0f} GFLOP/s "
              f"({100 * r['matrix_fraction_of_fp32_ceiling']:.0f} % of the ceiling)")
        for o in r["top_ops"]:
            print(f"  {o['self_s']:7.3f} s {o['calls']:4d}x {o['op']:<32} {o['shapes']}")
    print(f"\nwritten: {out}")


def _in_fresh_process(target, *args):
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _ceiling_worker(dtype_name: str, threads: int, queue) -> None:
    queue.put(matmul_ceiling(dtype_name, threads))


def load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (median reported)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--profile", action="store_true", help="profile one fp32 step per case instead")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if args.profile:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _profile(cases, args.threads, args.batch_size, args.out.parent / "train_step_profile.json")
        return
    load_before = load_average()
    before = {d: _in_fresh_process(_ceiling_worker, d, args.threads) for d in ("fp32", "bf16")}
    rows = []
    for case in cases:
        for bf16 in ((False,) if case == "pgd-eval" else (False, True)):
            row = _in_fresh_process(run_case, case, bf16, args.threads, args.steps, args.batch_size)
            rows.append(row)
            print(f"{case:>18} {row['dtype']}: {row['ms_per_step']:8.1f} ms/step", flush=True)
    # measured before and after the cases; on a shared machine the larger one is closer to the true ceiling
    after = {d: _in_fresh_process(_ceiling_worker, d, args.threads) for d in ("fp32", "bf16")}
    ceilings = {d: max(before[d], after[d]) for d in before}
    for row in rows:
        row["fraction_of_fp32_ceiling"] = row["gflops"] / ceilings["fp32"]
    ratios = _bf16_ratios(rows)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": _machine(args.threads),
              "load_average_before": load_before, "load_average_after": load_average(),
              "batch_size": args.batch_size, "matmul_ceiling_gflops": ceilings,
              "matmul_ceiling_before_after": {"before": before, "after": after}, "rows": rows,
              "bf16_speedup": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _print_table(report)
    print(f"\nwritten: {args.out}")


def _bf16_ratios(rows: list[dict]) -> dict[str, float]:
    """fp32 ms/step divided by bf16 ms/step, per case (> 1: bf16 is faster)."""
    by = {(r["case"], r["dtype"]): r["ms_per_step"] for r in rows}
    return {case: by[(case, "fp32")] / by[(case, "bf16")] for case, dtype in by if dtype == "bf16"}


def _machine(threads: int) -> dict:
    import torch

    from robustmi.runs.environment import cpu_capability

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": mp.cpu_count(), "threads": threads, "torch": torch.__version__,
            "cpu": cpu_capability()}  # AVX2 / AVX512, native bf16 or emulated


def _print_table(report: dict) -> None:
    c = report["matmul_ceiling_gflops"]
    cpu = report["machine"]["cpu"]
    print(f"\n{cpu['capability']}, native bf16: {cpu['native_bf16']}; matmul ceiling: fp32 {c['fp32']:.0f} "
          f"GFLOP/s, bf16 {c['bf16']:.0f} GFLOP/s ({report['machine']['threads']} threads); load average "
          f"{report['load_average_before']}")
    header = (f"{'case':>18} {'dtype':>5} {'ms/step':>9} {'samples/s':>10} {'GFLOP/step':>10} "
              f"{'GFLOP/s':>8} {'% fp32 ceil':>11} {'peak MB':>8}")
    print(header)
    for r in report["rows"]:
        print(f"{r['case']:>18} {r['dtype']:>5} {r['ms_per_step']:9.1f} {r['samples_per_s']:10.1f} "
              f"{r['gflop_per_step']:10.2f} {r['gflops']:8.1f} {100 * r['fraction_of_fp32_ceiling']:10.1f}% "
              f"{r['peak_rss_mb']:8.0f}")
    print("bf16 speed-up (fp32 time / bf16 time): "
          + ", ".join(f"{k} {v:.2f}x" for k, v in report["bf16_speedup"].items()))


if __name__ == "__main__":
    main()
