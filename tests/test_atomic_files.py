"""Atomic writes: a process killed (SIGKILL) at any moment while rewriting a file leaves the previous version or
the new one, never a partial file; the readers' one-line errors for files that are not text."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exitspace.errors import ConfigError, DataError
from exitspace.files import atomic_write_text, load_yaml, read_text, safe_file_name, writable_folder

REPO = Path(__file__).resolve().parents[1]
WRITER = """
import json, sys
from exitspace.files import atomic_write_text
path = sys.argv[1]
versions = [json.dumps({"version": v, "rows": [[v] * 50] * 4000}) for v in range(2)]
print("ready", flush=True)
n = 0
while True:
    atomic_write_text(path, versions[n % 2])
    n += 1
"""


def test_kill_during_writes_leaves_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    atomic_write_text(path, json.dumps({"version": -1}))
    rng = random.Random(25)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    seen = set()
    for _ in range(12):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE)
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        document = json.loads(path.read_text())  # never partial: the old or the new version
        seen.add(document["version"])
        assert document["version"] == -1 or len(document["rows"]) == 4000
    assert seen & {0, 1}, "no kill came after a completed write"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "results.json"]
    assert all(name.startswith(".results.json.") and name.endswith(".tmp") for name in leftovers)


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    atomic_write_text(path, "old")

    class Boom(Exception):
        pass

    from exitspace.files import atomic_output

    with pytest.raises(Boom):
        with atomic_output(path) as handle:
            handle.write(b"half")
            raise Boom
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_writer_given_a_path_replaces_the_file_only_when_it_finishes(tmp_path: Path) -> None:
    from exitspace.files import atomic_output_path

    path = tmp_path / "model.onnx"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_output_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("exporter failed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    with atomic_output_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_readers_refuse_what_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "nul.yaml").write_bytes(b"a: 1\x00")
    for name in ("bin.yaml", "nul.yaml"):
        with pytest.raises(ConfigError, match=f"run config .*{name}: (not UTF-8 text|a binary file)"):
            load_yaml(tmp_path / name, "run config", "give a YAML file")
    with pytest.raises(DataError, match="is a folder"):
        read_text(tmp_path, "results file", "give a file", DataError)
    with pytest.raises(ConfigError, match="duplicate key 'a' at line 2"):
        (tmp_path / "dup.yaml").write_text("a: 1\na: 2\n")
        load_yaml(tmp_path / "dup.yaml", "run config", "fix it")


def test_file_names_and_folders(tmp_path: Path) -> None:
    assert safe_file_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_file_name("..") == "" and safe_file_name("a b/c") == "a_b_c"
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="--out .*is a file"):
        writable_folder(blocker / "sub", "--out")
