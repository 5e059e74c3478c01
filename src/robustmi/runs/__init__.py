"""robustmi.runs: config dataclasses + YAML, run folders, seeding, checkpoint IO, environment info."""

from robustmi.runs.checkpoint import load_checkpoint, save_checkpoint, sidecar_path
from robustmi.runs.config import config_from_dict, config_to_dict, load_config, save_config_yaml
from robustmi.runs.environment import environment_info, is_main_process
from robustmi.runs.run_dir import RunDir
from robustmi.runs.seed import get_rng_state, seed_everything, set_rng_state

__all__ = [
    "RunDir",
    "config_from_dict",
    "config_to_dict",
    "environment_info",
    "get_rng_state",
    "is_main_process",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "save_config_yaml",
    "seed_everything",
    "set_rng_state",
    "sidecar_path",
]
