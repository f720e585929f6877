"""A non-editable install carries what `exitspace run` needs: the run and training configs as data files,
found through exitspace.config.INSTALLED_DATA when there is no checkout around the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import exitspace.config as config_module

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_configs_and_the_installed_copy_finds_them(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("setuptools")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("exitspace-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        data = [name for name in names if ".data/data/share/exitspace/" in name]
        assert any(name.endswith("share/exitspace/configs/default.yaml") for name in data)
        assert any(name.endswith("share/exitspace/configs/train/smoke.yaml") for name in data)
        assert "exitspace/hardware/presets/edge_tpu_quad.yaml" in names
        prefix = tmp_path / "prefix"
        for name in data:
            target = prefix / name.split(".data/data/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(config_module, "REPO_ROOT", tmp_path / "no_checkout")
    monkeypatch.setattr(config_module, "INSTALLED_DATA", prefix / "share" / "exitspace")
    config = config_module.load_config()
    assert Path(config.source).resolve() == (prefix / "share/exitspace/configs/default.yaml").resolve()
    fallback = config.resolve_path(config.exit_tables.fallback_train)
    assert fallback is not None and fallback.resolve() == (prefix / "share/exitspace/configs/train/smoke.yaml").resolve()
    assert config_module.named_config_path("resnet20_cifar10").is_file()
