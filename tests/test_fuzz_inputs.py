"""A battery of malformed inputs over every file a user hands exitspace: run configs, training configs, hardware
YAML, exit tables, results documents and ONNX files. Each is given to the real command (in-process) and must
end with exit code 2 and one line naming the field (or file) and what to do, no traceback, within seconds, and
never be accepted. Hand-picked cases come with a generated part (hypothesis, derandomized)."""

from __future__ import annotations

import copy
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from exitspace.cli.main import app, register_commands

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "results" / "resnet20_cifar10"
CORE = REPO / "tests" / "data" / "hardware" / "tiny_core.yaml"
FIX_WORDS = ("use", "give", "must", "remove", "write", "need", "add", "fix", "keep", "should", "choose", "set",
             "re-run", "re-export", "delete", "check", "rename", "pick", "run ", "list", "e.g.", "unknown", "missing")
GENERATED = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

register_commands()


def refused(args: list[str], *names: str) -> str:
    """Run the command; it must fail with code 2 and a last line "error: ..." naming each of ``names`` and saying
    what to do; lines before it may only be progress."""
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, (args, result.exit_code, result.output[-800:], result.exception)
    assert lines and lines[-1].startswith("error: "), result.output[-800:]
    assert "Traceback" not in result.output and not any(line.startswith("error") for line in lines[:-1])
    line = lines[-1]
    for name in names:
        assert name in line, (name, line)
    assert any(word in line.lower() for word in FIX_WORDS), line
    return line


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


# ---------------------------------------------------------------- run configs

RUN_BASE: dict[str, Any] = {"name": "fuzz", "exit_tables": {"dir": str(TABLES)},
                            "search": {"trials": 1, "population": 4, "baselines": {"mac_proxy": False}}}
NAN, INF = float("nan"), float("inf")
RUN_CASES: list[tuple[str, Any]] = [
    ("search.trials", 0), ("search.trials", -5), ("search.trials", "many"), ("search.trials", 2.5),
    ("search.trials", 10**25), ("search.trials", [1]), ("search.trials", None), ("search.population", 2),
    ("search.population", "x"), ("search.population", 10**30), ("search.seed", "abc"), ("search.seed", 1.5),
    ("seed", "zero"), ("seed", [0]), ("name", "a/b"), ("name", ""), ("name", "../up"), ("name", "a b"),
    ("search.elp", "fast"), ("search.elp", 3), ("search.objectives", ["accuracy"]), ("search.objectives", []),
    ("search.objectives", ["accuracy", "accuracy"]), ("search.objectives", ["accuracy", "speed"]),
    ("search.objectives", "accuracy"), ("search.space.confidence", "vibes"), ("search.space.policies", []),
    ("search.space.policies", ["sometimes"]), ("search.space.allocations", ["magic"]), ("search.space.allocations", []),
    ("search.space.thresholds.low", 1.5), ("search.space.thresholds.high", -0.1), ("search.space.thresholds.step", 0),
    ("search.space.thresholds.step", -0.01), ("search.space.thresholds.mode", "each"), ("search.space.thresholds.low", NAN),
    ("search.space.thresholds.high", INF), ("search.space.thresholds", "shared"), ("search.space.min_exits", -1),
    ("search.space.max_exits", -2), ("search.space.precision_pairs", [[8, 9]]), ("search.space.precision_pairs", [[8]]),
    ("search.space.precision_pairs", []), ("search.space.precision_pairs", [["a", "b"]]),
    ("search.space.precision_pairs", [[16, 16]]), ("search.space.precision_pairs", "8/8"), ("search.space.exits", "A"),
    ("search.space.head_types", 7), ("search.constraints.min_accuracy", 85), ("search.constraints.min_accuracy", -0.1),
    ("search.constraints.min_accuracy", NAN), ("search.constraints.min_accuracy", INF), ("search.constraints.min_accuracy", "high"),
    ("search.constraints.max_accuracy_drop", 5), ("search.constraints.max_accuracy_drop", -1),
    ("search.constraints.max_latency", 0), ("search.constraints.max_latency", -1), ("search.constraints.max_latency", NAN),
    ("search.constraints.max_p99_latency", "x"), ("search.constraints.memory_fit", "maybe"),
    ("search.constraints.min_early_exit_share", 2), ("search.constraints.max_exit_overhead", 1.01),
    ("search.hv_reference", {"epl": 1}), ("search.hv_reference", {"elp": NAN}), ("search.hv_reference", {"elp": "x"}),
    ("search.hv_reference", "1.5"), ("search.hv_reference", {"elp": -INF}), ("search.baselines.paper", "sometimes"),
    ("search.baselines.mac_proxy_trials", 0), ("search.baselines.static", "yes please"),
    ("search.baselines.mac_proxy_trials", 10**25), ("search.storage", 5), ("search.study_name", ["x"]),
    ("search.refine_allocation", 3), ("report.designs", 0), ("report.sweep_layers", -1), ("report.html", "sure"),
    ("report.note", {"a": 1}), ("search", 5), ("search", [1, 2]), ("report", "x"), ("search.space", "all"),
    ("search.constraints", [0.9]), ("hardware", "edge"), ("cost", None and 1), ("exit_tables", 3), ("train", "x"),
    ("search.trails", 5), ("serch", {}), ("search.space.exit", None), ("report.colour", "red"),
    ("search.constraints.min_acc", 0.5), ("hardware.systems", "x"), ("train.config", 12), ("train.overrides", [1]),
]


@pytest.mark.parametrize(("field", "value"), RUN_CASES, ids=[f"{f}={v!r}"[:60] for f, v in RUN_CASES])
def test_run_config_field(field: str, value: Any, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(_set(RUN_BASE, field, value)))
    shown = field.rsplit(".", 1)[0] if field in ("cost", "hardware", "exit_tables", "train") else field
    refused(["search", str(path), "--run-dir", str(tmp_path / "run"), "--no-report"], shown.split(".")[0])


@pytest.mark.parametrize("text", [
    "search:\n  trials: 5\n   population: [\n", "search: {trials: 5\n", "- a\n- b\n", "just text\n", "search:\n\t trials: 3\n",
    "search: {}\nsearch: {}\n", "search:\n  trials: 1\n  trials: 2\n", "a: &x [*x]\n", "\x00\x01\x02", "!!python/object:os.system x\n",
    "search: !!binary aGVsbG8=\n", "[" * 5000 + "]" * 5000 + "\n",
])
def test_run_config_text(text: str, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    refused(["search", str(path), "--run-dir", str(tmp_path / "run")], "fuzz.yaml")


@GENERATED
@given(key=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12),
       section=st.sampled_from(["", "search.", "search.space.", "search.constraints.", "report.", "search.baselines."]))
def test_run_config_unknown_keys_generated(key: str, section: str, tmp_path: Path) -> None:
    from exitspace.config import RunConfig, SearchConfig, SpaceConfig

    known = set(RunConfig.model_fields) | set(SearchConfig.model_fields) | set(SpaceConfig.model_fields) | {
        "min_accuracy", "max_accuracy_drop", "max_exit_overhead", "memory_fit", "max_latency", "max_p99_latency",
        "min_early_exit_share", "html", "designs", "sweep_layers", "note", "static", "paper", "mac_proxy",
        "mac_proxy_trials"}
    if key in known or "." in key or not key.strip():
        return
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(_set(RUN_BASE, f"{section}{key}", 1), allow_unicode=True))
    refused(["search", str(path), "--run-dir", str(tmp_path / "run")], "unknown key")


@GENERATED
@given(field=st.sampled_from(["search.trials", "search.population", "report.designs", "search.baselines.mac_proxy_trials"]),
       value=st.one_of(st.integers(max_value=0), st.integers(min_value=10**7), st.text(min_size=1, max_size=8),
                       st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer())))
def test_run_config_counts_generated(field: str, value: Any, tmp_path: Path) -> None:
    if field == "search.population" and isinstance(value, int) and 4 <= value:
        value = -value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = f"x{value}"
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(_set(RUN_BASE, field, value), allow_unicode=True))
    refused(["search", str(path), "--run-dir", str(tmp_path / "run")], field)


@GENERATED
@given(field=st.sampled_from(["search.constraints.min_accuracy", "search.constraints.max_accuracy_drop",
                              "search.constraints.max_exit_overhead", "search.constraints.min_early_exit_share",
                              "search.space.thresholds.low"]),
       value=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9), st.just(NAN)))
def test_run_config_fractions_generated(field: str, value: float, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(_set(RUN_BASE, field, value)))
    refused(["search", str(path), "--run-dir", str(tmp_path / "run")], field.rsplit(".", 1)[0])


@GENERATED
@given(field=st.sampled_from(["search.elp", "search.space.confidence", "search.space.thresholds.mode",
                              "search.baselines.paper", "search.space.policies", "search.space.allocations",
                              "search.objectives"]),
       word=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10))
def test_run_config_vocabulary_generated(field: str, word: str, tmp_path: Path) -> None:
    from exitspace.config import OBJECTIVES

    valid = {"paper", "product", "max_softmax", "entropy", "margin", "shared", "per_exit", "auto", "on", "off",
             "wait", "overlap", "single", "round_robin", "greedy", "ga", *OBJECTIVES}
    if word in valid or word.lower() in ("true", "false", "yes", "no", "null", "~"):
        return
    value: Any = [word] if field.endswith(("policies", "allocations")) else [word, "elp"] if field.endswith("objectives") else word
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(_set(RUN_BASE, field, value)))
    refused(["search", str(path), "--run-dir", str(tmp_path / "run")], field.split(".")[0])


# ---------------------------------------------------------------- training configs

TRAIN_BASE = yaml.safe_load((REPO / "configs" / "train" / "smoke.yaml").read_text())
TRAIN_CASES: list[tuple[str, Any]] = [
    ("optim.epochs", 0), ("optim.epochs", "ten"), ("optim.batch_size", -1), ("optim.lr", 0), ("optim.lr", NAN),
    ("optim.lr", "fast"), ("optim.momentum", 1.0), ("optim.schedule", "linear"), ("optim.warmup_fraction", 1.5),
    ("optim.label_smoothing", -0.1), ("optim.weight_decay", -1), ("optim.lrr", 0.1), ("loss.distill_weight", 2),
    ("loss.distill_temperature", 0), ("loss.weights", "decreasing"), ("loss.teacher_weight", -0.5), ("swa.epochs", -1),
    ("swa.lr", 0), ("heads.epochs", "x"), ("qat.pairs", ["8/9"]), ("qat.pairs", ["eight"]), ("qat.pairs", "8/8"),
    ("qat.epochs", -1), ("qat.lr", INF), ("qat.calibration_batches", -2), ("runtime.threads", 0),
    ("runtime.device", "tpu"), ("runtime.eval_batch_size", 0), ("runtime.log_every", 0), ("runtime.seed", "s"),
    ("data.name", 5), ("data", "cifar"), ("optim", [1]), ("runtime.colour", 1), ("qatt", {}),
]


@pytest.mark.parametrize(("field", "value"), TRAIN_CASES, ids=[f"{f}={v!r}"[:60] for f, v in TRAIN_CASES])
def test_train_config_field(field: str, value: Any, tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(_set(TRAIN_BASE, field, value)))
    refused(["train", str(path), "--run-dir", str(tmp_path / "run")], field.split(".")[0])


@pytest.mark.parametrize("text", ["optim: [1, 2\n", "- 1\n", "optim: {}\noptim: {}\n", "\xff\xfe garbage", "7\n"])
def test_train_config_text(text: str, tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_bytes(text.encode("latin-1"))
    refused(["train", str(path), "--run-dir", str(tmp_path / "run")], "train.yaml")


# ---------------------------------------------------------------- hardware YAML (a ZigZag core)

CORE_BASE = yaml.safe_load(CORE.read_text())
CORE_CASES: list[tuple[str, Any]] = [
    ("memories.reg_w.size", -8), ("memories.reg_w.size", 0), ("memories.reg_w.size", "big"), ("memories.reg_w.r_cost", -1),
    ("memories.reg_w.w_cost", "x"), ("memories.reg_w.operands", ["I9"]), ("memories.reg_w.operands", []),
    ("memories.reg_w.operands", ["I2", "I2"]), ("memories.reg_w.served_dimensions", ["D7"]), ("memories.reg_w.latency", -1),
    ("memories.reg_w", 5), ("memories", []), ("memories.dram.size", 1.5), ("operational_array.sizes", [0, -1]),
    ("operational_array.sizes", "2x2"), ("operational_array.dimensions", ["D1", "D1"]), ("operational_array", 4),
    ("operational_array.unit_energy", -1), ("dataflows", {"D9": ["K, 4"]}), ("type", "stream.magic"),
    ("memories.reg_w.auto_cost_extraction", True), ("memories.reg_o.ports", 3),
]


@pytest.mark.parametrize(("field", "value"), CORE_CASES, ids=[f"{f}={v!r}"[:60] for f, v in CORE_CASES])
def test_hardware_core_field(field: str, value: Any, tmp_path: Path) -> None:
    data = _set(CORE_BASE, field, value)
    if field.endswith("auto_cost_extraction"):
        data["memories"]["reg_w"].pop("r_cost")
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump(data))
    refused(["hardware", "validate", str(path)], "core.yaml")


@pytest.mark.parametrize("drop", ["memories", "operational_array", "memories.reg_w.size", "memories.reg_w.r_cost",
                                  "memories.reg_w.operands", "memories.dram"])
def test_hardware_core_missing(drop: str, tmp_path: Path) -> None:
    data = copy.deepcopy(CORE_BASE)
    node = data
    *parents, last = drop.split(".")
    for key in parents:
        node = node[key]
    del node[last]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump(data))
    refused(["hardware", "validate", str(path)], "core.yaml")


@GENERATED
@given(data=st.binary(min_size=1, max_size=400))
def test_hardware_random_bytes_generated(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "core.yaml"
    path.write_bytes(data)
    refused(["hardware", "validate", str(path)], "core.yaml")


# ---------------------------------------------------------------- exit tables

def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _table_arrays() -> dict[str, Any]:
    with np.load(TABLES / "exit_table_b8_e8.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _bad_tables() -> list[tuple[str, bytes]]:
    good = _table_arrays()
    meta = json.loads(str(good["meta"]))
    cases = [("empty", b""), ("text", b"not a table"), ("truncated", (TABLES / "exit_table_b8_e8.npz").read_bytes()[:5000]),
             ("zip without arrays", _npz({"x": np.zeros(2)}))]
    changes = {
        "no meta": lambda a: a.pop("meta"),
        "meta not json": lambda a: a.update(meta=np.array("{not json")),
        "meta version 99": lambda a: a.update(meta=np.array(json.dumps({**meta, "format_version": 99}))),
        "fewer labels": lambda a: a.update(val_labels=a["val_labels"][:-3]),
        "logits 2-d": lambda a: a.update(val_logits=a["val_logits"][:, 0, :]),
        "head keys short": lambda a: a.update(head_keys=a["head_keys"][:-1]),
        "no head blocks": lambda a: a.pop("head_blocks"),
        "labels out of range": lambda a: a.update(val_labels=a["val_labels"] + 1000),
        "nan logits": lambda a: a.update(val_logits=np.full_like(a["val_logits"], np.nan)),
        "no val split": lambda a: (a.pop("val_logits"), a.pop("val_labels")),
    }
    for name, change in changes.items():
        arrays = copy.copy(good)
        change(arrays)
        cases.append((name, _npz(arrays)))
    return cases


@pytest.mark.parametrize(("name", "content"), _bad_tables(), ids=[name for name, _ in _bad_tables()])
def test_exit_table(name: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "exit_table_b8_e8.npz"
    path.write_bytes(content)
    refused(["evaluate", "--exits", "D,I", "--exit-table", str(path), "--thresholds", "0.9"], "exit_table_b8_e8.npz")


# ---------------------------------------------------------------- results documents

@pytest.fixture(scope="module")
def results_base() -> dict[str, Any]:
    data = json.loads((TABLES / "report" / "results.json").read_text())
    data["trials"] = data["trials"][:20]
    return data


RESULTS_CASES: list[tuple[str, Any]] = [
    ("version", 99), ("version", "2"), ("format", "other"), ("pareto", "none"), ("pareto", [1, 2]), ("study", None),
    ("study.trials", "many"), ("headline", []), ("objectives", 5), ("static", [1]), ("name", None), ("space", "x"),
    ("hypervolume", 1.5), ("trials", "rows"), ("config", "x"), ("pareto.0.design", "x"), ("pareto.0.test", None),
]


def _set_path(data: Any, dotted: str, value: Any) -> Any:
    out = copy.deepcopy(data)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("field", "value"), RESULTS_CASES, ids=[f"{f}={v!r}"[:50] for f, v in RESULTS_CASES])
def test_results_document_field(field: str, value: Any, results_base: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_set_path(results_base, field, value)))
    refused(["report", str(path), "--out", str(tmp_path / "out")], "results.json")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("drop", ["pareto", "study", "headline", "name", "objectives", "static", "space"])
def test_results_document_missing(drop: str, results_base: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(results_base)
    del data[drop]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    refused(["report", str(path), "--out", str(tmp_path / "out")], "results.json", drop)


@GENERATED
@given(cut=st.integers(min_value=1, max_value=4000))
def test_results_document_truncated_generated(cut: int, results_base: dict[str, Any], tmp_path: Path) -> None:
    text = json.dumps(results_base)
    path = tmp_path / "results.json"
    path.write_text(text[: len(text) - cut])
    refused(["report", str(path), "--out", str(tmp_path / "out")], "results.json")


# ---------------------------------------------------------------- ONNX

def _onnx_model(op: str = "Conv", **attrs: Any) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.1] * 108)
    node = helper.make_node(op, ["x", "w"], ["y"], name="layer", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _bad_onnx() -> list[tuple[str, bytes]]:
    good = _onnx_model()
    return [("empty", b""), ("text", b"hello"), ("truncated", good[: len(good) // 2]), ("zip", _npz({"x": np.zeros(1)})),
            ("unknown op", _onnx_model("NoSuchOp")), ("dilated conv", _onnx_model(dilations=[2, 2])),
            ("lstm", _onnx_model("LSTM"))]


@pytest.mark.parametrize(("name", "content"), _bad_onnx(), ids=[name for name, _ in _bad_onnx()])
def test_onnx_file(name: str, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    path.write_bytes(content)
    refused(["workload", "--onnx", str(path)], "net.onnx")


def test_battery_size() -> None:
    """The hand-picked cases alone are at least 150; the generated ones add about 25 each."""
    hand_picked = (len(RUN_CASES) + 12 + len(TRAIN_CASES) + 5 + len(CORE_CASES) + 6 + len(_bad_tables())
                   + len(RESULTS_CASES) + 7 + len(_bad_onnx()))
    assert hand_picked >= 150, hand_picked
    assert math.isfinite(hand_picked)
