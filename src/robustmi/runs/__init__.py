"""robustmi.runs: config dataclasses + YAML, run folders, seeding, checkpoint IO."""

from robustmi.runs.config import config_from_dict, config_to_dict, load_config, save_config_yaml

__all__ = [
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config_yaml",
]
