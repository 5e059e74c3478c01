"""Reading a run folder's saved config and comparing settings: the one place commands look into config.yaml.

- :func:`read_run_config`: the mapping in ``RUN/config.yaml`` (``{}`` for anything that is not a run folder),
  e.g. so that ``evaluate --model RUN`` and ``vulnerability --model RUN`` default to the run's dataset.
- :func:`run_dataset`: the dataset a run folder was trained or measured on; :func:`run_defaults`: what a
  command measuring a run folder's model takes from it (dataset, data_dir).
- :func:`config_differences`: ``key: saved -> wanted`` for every setting two configs disagree on (a setting
  added after a run was saved compares as its default, :func:`field_defaults`, so new knobs whose default
  keeps the old behaviour do not orphan old runs); :func:`require_same_settings` refuses to continue
  (``--resume``) or reuse a run that was started with other settings, naming the differences.
- :func:`layered_config`: a config built from layers of mappings (preset, ``--config`` YAML, command options),
  then ``key=value`` overrides; sections merge key by key, later layers winning.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robustmi.errors import ConfigError
from robustmi.runs.config import apply_override, config_from_dict, config_to_dict

T = TypeVar("T")


def read_run_config(folder: str | Path) -> dict[str, Any]:
    """The mapping saved in ``folder/config.yaml``; ``{}`` when ``folder`` is not a run folder.

    Raises:
        ConfigError: the file exists but is not valid YAML (names the file and the way around it).
    """
    path = Path(folder) / "config.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"{path} is not valid YAML; repair it, or pass --dataset and the settings "
                          f"explicitly") from None
    return data if isinstance(data, dict) else {}


def run_dataset(folder: str | Path) -> str | None:
    """The ``dataset`` recorded in a run folder's config.yaml (None if not a run folder or not recorded).

    Also finds it in a config.yaml that nests the resolved config under ``config``.
    """
    data = read_run_config(folder)
    found = data.get("dataset")
    if not isinstance(found, str) and isinstance(data.get("config"), dict):
        found = data["config"].get("dataset")
    return found if isinstance(found, str) and found else None


def run_defaults(model: str | Path) -> dict[str, Any]:
    """What a command measuring the model in run folder ``model`` takes from it by default: its
    ``dataset`` and ``data_dir`` where recorded (``{}`` when ``model`` is not a run folder)."""
    found = {"dataset": run_dataset(model), "data_dir": read_run_config(model).get("data_dir")}
    return {key: value for key, value in found.items() if value is not None}


def field_defaults(cfg: Any) -> dict[str, Any]:
    """The default of every field of config dataclass ``cfg`` (instance or class) that has one, as config
    data; ``{}`` for a mapping."""
    if not is_dataclass(cfg):
        return {}
    found = {}
    for item in fields(cfg):
        if item.default is not MISSING:
            found[item.name] = config_to_dict(item.default)
        elif item.default_factory is not MISSING:
            found[item.name] = config_to_dict(item.default_factory())
    return found


def config_differences(saved: Any, wanted: Any, ignore: Collection[str] = (), prefix: str = "",
                       defaults: Any = None) -> list[str]:
    """``"key: saved -> wanted"`` for every setting that differs; nested keys dotted, ``ignore`` skipped.

    Args:
        saved, wanted: config data (``config_to_dict`` output or YAML/JSON mappings); lists and tuples
            compare equal when their items do.
        ignore: keys (at any depth, by their last name) that may differ, e.g. ``data_dir``.
        defaults: config data of the same shape (``field_defaults``): a key missing from ``saved`` takes its
            value from here (the run predates the setting, so it ran with the behaviour of its default).
    """
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        defaults = defaults if isinstance(defaults, Mapping) else {}
        found = []
        for key in sorted(set(saved) | set(wanted), key=str):
            if key in ignore:
                continue
            where = f"{prefix}.{key}" if prefix else str(key)
            old = saved[key] if key in saved else defaults.get(key, "<unset>")
            found += config_differences(old, wanted.get(key, "<unset>"), ignore, where, defaults.get(key))
        return found
    if isinstance(saved, (list, tuple)) and isinstance(wanted, (list, tuple)):
        saved, wanted = list(saved), list(wanted)
    return [] if saved == wanted else [f"{prefix}: {saved!r} -> {wanted!r}"]


def require_same_settings(folder: str | Path, cfg: Any, may_change: Collection[str] = ()) -> None:
    """Refuse to continue or reuse the run in ``folder`` when its config.yaml holds other settings than
    ``cfg`` (no config.yaml: nothing to compare).

    Args:
        folder: the run folder.
        cfg: the config (dataclass or mapping) of the run about to continue or reuse it.
        may_change: keys that may differ (where the data lives, budgets that may grow).

    Raises:
        ConfigError: a setting differs; the message names the first differences and the fix.
    """
    if not (Path(folder) / "config.yaml").is_file():
        return
    found = config_differences(read_run_config(folder), config_to_dict(cfg), may_change,
                               defaults=field_defaults(cfg))
    if found:
        shown = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
        raise ConfigError(f"run folder {str(folder)!r} was started with other settings ({shown}); resume "
                          f"with the same settings, or choose another --out (nothing was changed)")


def layered_config(cls: type[T], layers: Sequence[Mapping[str, Any]], overrides: Sequence[str] = ()) -> T:
    """``cls`` from its defaults, then each mapping of ``layers`` in turn, then ``key=value`` overrides.

    Nested mappings merge key by key (a YAML ``attack: {eps: 0.1}`` keeps the preset's other attack knobs).
    A ``None`` in a layer sets the value to None (YAML ``limit: null``): leave options not given out.

    Raises:
        ConfigError: a malformed override, unknown key, wrong type or a value the dataclass rejects.
    """
    raw: dict[str, Any] = {}
    for layer in layers:
        _merge(raw, layer)
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(cls, raw)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif isinstance(value, Mapping):
            base[key] = {}
            _merge(base[key], value)
        else:
            base[key] = value
