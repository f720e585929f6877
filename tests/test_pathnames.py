from __future__ import annotations

from pathlib import Path

import pytest

from exitspace.pathnames import shown_path, shown_storage


def test_paths_inside_the_working_directory_become_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert shown_path(tmp_path / "runs" / "x") == "runs/x"
    assert shown_path("/elsewhere/file") == "/elsewhere/file"
    assert shown_storage(f"exitspace-sqlite://{tmp_path}/runs/study.sqlite3") == "exitspace-sqlite://runs/study.sqlite3"
    assert shown_storage(f"sqlite:///{tmp_path}/a.db") == "sqlite:///a.db"
    assert shown_storage("postgresql://***@host/db") == "postgresql://***@host/db"
