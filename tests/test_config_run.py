"""Run config: named configs load; malformed input gets one line naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from exitspace.config import OBJECTIVES, load_config, parse_config
from exitspace.errors import ConfigError
from exitspace.train.config import load_train_config


@pytest.mark.parametrize("name", ["default", "resnet20_cifar10", "mobilenetv2_cifar10"])
def test_named_configs_load(name: str) -> None:
    config = load_config(name)
    assert config.name == name
    assert set(config.search.objectives) <= set(OBJECTIVES)
    assert config.resolve_path(config.exit_tables.dir) is not None


def test_default_config_found_without_argument() -> None:
    assert load_config(None).name == "default"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"search": {"trialz": 3}}, "search.trialz: unknown key"),
        ({"search": {"constraints": {"min_accuracy": 90}}}, "write 0.9 for 90%"),
        ({"search": {"space": {"thresholds": {"low": 0.9, "high": 0.5}}}}, "need 0 <= low < high <= 1"),
        ({"search": {"space": {"min_exits": 3, "max_exits": 1}}}, "max_exits=1 < min_exits=3"),
        ({"search": {"objectives": ["accuracy"]}}, "at least two objectives"),
        ({"search": {"objectives": ["accuracy", "speed"]}}, "unknown objective 'speed'"),
        ({"search": {"space": {"precision_pairs": [[8, 9]]}}}, "bit width 9"),
        ({"search": {"trials": 0}}, "search.trials"),
        ({"name": "a b"}, "name"),
        ([1, 2], "top level must be a mapping"),
    ],
)
def test_bad_config_one_line(data: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.yaml")
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("search:\n  trials: 5\n   population: [\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_config(path)


def test_overrides_and_name_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("search:\n  trials: 5\n")
    config = load_config(path, {"search.population": 8, "seed": 3})
    assert (config.name, config.search.trials, config.search.population, config.search_seed) == ("mine", 5, 8, 3)
    assert config.run_path() == Path("runs") / "mine"


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="not a file and not a named config"):
        load_config("no_such_config")


TRAIN_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "train").rglob("*.yaml"))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_shipped_training_configs_load(path: Path) -> None:
    config = load_train_config(path)
    assert config.name.removeprefix("diag_") == path.stem  # run directories default to runs/<name>
    if config.data.name == "cifar10":
        assert config.data.path is not None and config.data.path.name == "cifar10-jpeg.tar.gz"
