"""The demo budgets by work: the same seed gives the same numbers on an idle and on a busy machine."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
import torch


def _hog(stop) -> None:  # a CPU-bound neighbour: the load a shared laptop or CI runner adds
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


def _numbers(results: dict) -> dict:
    """Everything the demo measured, without wall times."""
    return {"encoders": {k: {m: v for m, v in r.items() if m != "encoder_training_s"}
                         for k, r in results["encoders"].items()},
            "heads": {k: {m: v for m, v in r.items() if m != "wall_s"} for k, r in results["heads"].items()},
            "saliency": results["saliency_alignment"]}


@pytest.mark.slow
def test_demo_numbers_do_not_depend_on_machine_load(tmp_path):
    from robustmi.experiments.demo import run_demo

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        quiet = run_demo(tmp_path / "quiet", scale=0.02, seed=1, log=lambda _: None)
        stop = mp.Event()
        hogs = [mp.Process(target=_hog, args=(stop,)) for _ in range(2)]
        for hog in hogs:
            hog.start()
        try:
            busy = run_demo(tmp_path / "busy", scale=0.02, seed=1, log=lambda _: None)
        finally:
            stop.set()
            for hog in hogs:
                hog.join()
    finally:
        torch.set_num_threads(threads)
    assert _numbers(quiet) == _numbers(busy)
    assert json.loads((tmp_path / "busy" / "results.json").read_text())["seed"] == 1
