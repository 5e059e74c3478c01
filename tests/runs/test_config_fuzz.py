"""Property-based fuzz of config parsing: any YAML text or key=value override gives a config or a
ConfigError (one line), never another exception. Derandomized: the same examples on every run."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustmi.errors import ConfigError
from robustmi.runs import load_config
from robustmi.training.config import EncoderRunConfig, SupervisedRunConfig

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = st.sampled_from(["lr", "epochs", "seed", "attack.eps", "attack.steps", "attack", "eval_attacks",
                        "lr_milestones", "data_dir", "max_minutes", "bf16", "attack.norm", "x.y", "", "a..b"])
VALUES = st.one_of(
    st.sampled_from([".nan", ".inf", "-.inf", "1e999", "1/0", "8/255", "[1, 2", "{a: 1}", "null", "~", "true",
                     "0x10", "1_000", "'3'", "!!python/object/apply:os.system ['true']", "*anchor", "- 1",
                     "2**64", "-0", "1e-3", ""]),
    st.text(max_size=12),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _parses_or_config_error(call) -> None:
    try:
        call()
    except ConfigError as error:
        assert "\n" not in str(error)


@FUZZ
@given(overrides=st.lists(st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=3))
def test_overrides_fuzz(overrides):
    _parses_or_config_error(lambda: load_config(SupervisedRunConfig, None, overrides))


@FUZZ
@given(text=st.one_of(st.text(max_size=60),
                      st.lists(st.tuples(KEYS, VALUES), max_size=4).map(
                          lambda kvs: "".join(f"{k}: {v}\n" for k, v in kvs))))
def test_yaml_file_fuzz(tmp_path_factory, text):
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yaml"
    path.write_text(text, encoding="utf-8")
    _parses_or_config_error(lambda: load_config(EncoderRunConfig, path))


def test_yaml_tags_never_construct_objects(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "c.yaml"
    path.write_text(f"lr: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
                    f"['{marker}']]\n")
    _parses_or_config_error(lambda: load_config(SupervisedRunConfig, path))
    assert not marker.exists()
