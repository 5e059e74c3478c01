"""Typed run configuration: dataclass trees, YAML files and ``a.b=value`` overrides.

Every component owns a (frozen or plain) dataclass holding its knobs and their defaults; a run config is a
tree of them. :func:`load_config` builds one from defaults, then a YAML file, then command-line overrides,
checking every key and type on the way, so a typo fails at start-up with one line, not hours into a run.

Example::

    @dataclass(frozen=True)
    class Attack:
        eps: float = 0.3
        steps: int = 10

    @dataclass(frozen=True)
    class Run:
        attack: Attack = field(default_factory=Attack)
        seed: int = 0

    cfg = load_config(Run, "run.yaml", ["attack.eps=8/255", "seed=1"])   # cfg.attack.eps == 0.0313...

Config dataclasses must be defined at module level (their annotations are resolved in their module).

Supported field types: ``bool``, ``int``, ``float`` (ints accepted; also ``"8/255"`` and ``"1e-3"``; NaN and
infinities refused), ``str``,
``pathlib.Path``, nested dataclasses, ``Optional``/unions, ``Literal[...]``, ``tuple[...]``, ``list[...]``,
``dict[...]`` and ``Any``. A dataclass may validate itself in ``__post_init__`` by raising ``ConfigError``,
``ValueError`` or ``TypeError``; the message is reported with the field path.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from robustmi.errors import ConfigError
from robustmi.runs._atomic import atomic_write_text

T = TypeVar("T")

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*({_NUMBER})\s*)?$")


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build a config: ``cls`` defaults, then the YAML file at ``path``, then ``a.b=value`` overrides.

    Args:
        cls: the root dataclass.
        path: optional YAML file holding a (partial, nested) mapping of the config.
        overrides: ``"key.subkey=value"`` strings; values are parsed as YAML (``true``, ``10``, ``[1, 2]``)
            and float fields also take fractions such as ``8/255``.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: missing or non-mapping YAML, malformed override, unknown key, wrong type or a value
            rejected by a dataclass's ``__post_init__``.
    """
    from robustmi.runs.run_config import layered_config

    return layered_config(cls, [read_yaml_mapping(Path(path)) if path is not None else {}], overrides)


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, _path: str = "", _base: Any = None) -> T:
    """Build ``cls`` from a nested mapping; missing keys keep their defaults.

    Raises:
        ConfigError: unknown key (names the valid ones and the closest match), wrong type, missing required
            key, or a value rejected by ``__post_init__``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"config_from_dict expects a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {_path or 'root'!r} must be a mapping, got {type(data).__name__}; "
                          f"write it as 'key: value' lines")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    try:
        hints = typing.get_type_hints(cls)
    except NameError as error:
        raise TypeError(f"cannot resolve the annotations of {cls.__name__} ({error}); "
                        f"define config dataclasses at module level") from None
    for key in data:
        if key not in fields:
            raise ConfigError(_unknown_key_message(str(key), _path, list(fields)))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        where = f"{_path}.{name}" if _path else name
        default = getattr(_base, name) if _base is not None else _field_default(f)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], where, default)
        elif _base is not None:
            kwargs[name] = default
        elif default is dataclasses.MISSING:
            raise ConfigError(f"config key {where!r} is required; set it in the YAML file or as {where}=...")
    try:
        return cls(**kwargs)
    except (ConfigError, ValueError, TypeError) as error:
        raise ConfigError(f"invalid config {_path or cls.__name__!r}: {error}") from None


def config_to_dict(cfg: Any) -> Any:
    """YAML/JSON-ready data for a config tree: dataclasses -> dicts, tuples -> lists, paths -> strings."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {key: config_to_dict(value) for key, value in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(value) for value in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def save_config_yaml(cfg: Any, path: str | Path, header: str = "") -> None:
    """Write ``cfg`` as YAML (atomically) so that ``load_config(type(cfg), path)`` rebuilds it.

    Args:
        cfg: a config dataclass instance.
        path: destination file.
        header: optional text written first as ``#`` comment lines (ignored when the file is loaded).
    """
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    body = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    atomic_write_text(path, comments + body)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping in YAML file ``path`` ({} if empty); ConfigError if missing, invalid or not a mapping."""
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; check the --config path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        problem = str(error).replace("\n", " ")
        raise ConfigError(f"config file {str(path)!r} is not valid YAML ({problem}); fix its syntax") \
            from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values, "
                          f"got {type(data).__name__}; write it as 'key: value' lines")
    return data


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``raw[a][b] = value`` for ``"a.b=value"``, creating intermediate mappings."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"malformed override {override!r}; write key=value, e.g. attack.eps=0.3")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text  # not YAML (e.g. an unbalanced bracket): keep the raw string; typed fields reject it
    *parents, leaf = key.split(".")
    node = raw
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parents[: i + 1])
            raise ConfigError(f"override {override!r}: {prefix!r} is a single value, not a section; "
                              f"drop the sub-key or set {prefix}=VALUE")
        node = child
    node[leaf] = value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _unknown_key_message(key: str, path: str, valid: list[str]) -> str:
    where = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    section = f"at {path!r}" if path else "at the top level"
    return f"unknown config key {where!r}; valid keys {section}: {', '.join(valid)}{hint}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _mismatch(tp: Any, value: Any, where: str) -> ConfigError:
    return ConfigError(f"config key {where!r} expects {_type_name(tp)}, got {value!r} "
                       f"({type(value).__name__}); fix the value in the YAML file or override")


def _convert(tp: Any, value: Any, where: str, default: Any = None) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in the field's type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _mismatch(tp, value, where)
        base = default if isinstance(default, tp) else None  # e.g. a parent's non-default sub-config
        return config_from_dict(tp, value, _path=where, _base=base)
    if origin is Union or origin is types.UnionType:
        return _convert_union(tp, args, value, where, default)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"config key {where!r} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list) or tp in (tuple, list):
        return _convert_sequence(tp, origin or tp, args, value, where)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _mismatch(tp, value, where)
        key_tp, value_tp = args or (Any, Any)
        return {_convert(key_tp, k, f"{where}.{k}"): _convert(value_tp, v, f"{where}.{k}")
                for k, v in value.items()}
    return _convert_scalar(tp, value, where)


def _convert_union(tp: Any, args: tuple, value: Any, where: str, default: Any) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise _mismatch(tp, value, where)
    for arm in (a for a in args if a is not type(None)):
        try:
            return _convert(arm, value, where, default)
        except ConfigError as error:
            last = error
    if len(args) == 2 and type(None) in args:
        raise last  # Optional[X]: X's own message is the most useful one
    raise _mismatch(tp, value, where)


def _convert_sequence(tp: Any, kind: type, args: tuple, value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _mismatch(tp, value, where)
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"config key {where!r} expects {len(args)} values, got {len(value)}: {value!r}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    item_tp = args[0] if args else Any
    return kind(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):
            value = _parse_number(value, tp, where)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):  # .nan/.inf are never a setting: NaN passes every "> 0" check
            raise ConfigError(f"config key {where!r} must be a finite number, got {value!r}; "
                              f"fix the value in the YAML file or override")
    elif tp is Path:
        ok = isinstance(value, (str, Path))
        value = Path(value) if ok else value
    elif tp is type(None):
        ok = value is None
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    else:
        raise TypeError(f"config field {where!r} has an unsupported annotation {tp!r}")
    if not ok:
        raise _mismatch(tp, value, where)
    return value


def _parse_number(text: str, tp: Any, where: str) -> float:
    """``"8/255"`` -> 0.0313..., ``"1e-3"`` -> 0.001 (YAML 1.1 reads exponents without a dot as strings)."""
    match = _NUMBER_RE.match(text)
    if match is None:
        raise _mismatch(tp, text, where)
    numerator, denominator = match.groups()
    if denominator is None:
        return float(numerator)
    if float(denominator) == 0:
        raise ConfigError(f"config key {where!r}: division by zero in {text!r}")
    return float(numerator) / float(denominator)
