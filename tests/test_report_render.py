"""Report: results JSON, figures that open, Markdown linking existing figures, an offline HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from PIL import Image
from toys import ToyEvaluator
from typer.testing import Result

from exitspace.config import parse_config
from exitspace.report.render import chosen_designs, summary_text, write_report
from exitspace.search.codesign import CodesignInputs, run_codesign
from exitspace.search.results import AlignmentSweepRecord, ResultsDocument
from exitspace.search.space import DesignSpace


def _results(tmp_path: Path) -> ResultsDocument:
    config = parse_config({"name": "toy", "search": {
        "trials": 80, "population": 16, "constraints": {"max_accuracy_drop": 0.03},
        "space": {"precision_pairs": [[8, 8], [4, 8]], "allocations": ["greedy", "ga"]},
        "baselines": {"paper": "on", "mac_proxy_trials": 40}}})
    evaluator = ToyEvaluator()
    inputs = CodesignInputs(DesignSpace.build(config.search.space, evaluator.available()), evaluator, "toy")
    results = run_codesign(config, inputs, tmp_path / "run")
    results.alignment_sweep = AlignmentSweepRecord.model_validate({"core": "c", "note": "n", "layers": [
        {"name": "l0", "dim": "K", "actual": 16, "values": [8, 16, 24], "energy_pj": [1.0, 2.0, 3.5],
         "latency_cycles": [10.0, 20.0, 40.0], "macs": [80, 160, 240], "share": 0.5, "same_shape": [],
         "spatial_utilization": [1.0, 1.0, 0.75]}]})
    return results


def test_report_files(tmp_path: Path) -> None:
    results = _results(tmp_path)
    paths = write_report(results, tmp_path / "report", designs=3)
    for key in ("results", "markdown", "html", "figure:pareto", "figure:stages", "figure:hypervolume", "figure:alignment"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    for key in ("figure:pareto", "figure:stages", "figure:hypervolume", "figure:alignment"):
        with Image.open(paths[key]) as image:
            assert image.format == "PNG" and image.size[0] > 300
    saved = json.loads(paths["results"].read_text())
    assert saved["format"] == "exitspace.results"
    assert saved["version"] == 2
    assert len(saved["pareto"]) == len(results.pareto) > 0
    for entry in saved["pareto"]:
        assert {"design", "val", "test", "exit_ratios", "stages"} <= set(entry)
        assert abs(sum(entry["exit_ratios"]["test"]) - 1) < 1e-9
    md = paths["markdown"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 4 and all((paths["markdown"].parent / link).is_file() for link in links)
    assert "Pareto front" in md and "exit ratio (test)" in md
    assert results.paper_designs == []  # the toy network has no exits F..J, so the paper's designs do not apply
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=\"(http|//)", page)  # opens offline


def test_summary_states_measured_headline(tmp_path: Path) -> None:
    results = _results(tmp_path)
    head = results.headline
    assert head.elp_reduction is not None
    text = " ".join(summary_text(results))
    assert f"{100 * head.elp_reduction:.1f}%" in text
    assert "MAC-proxy" in text
    assert len(chosen_designs(results, 3)) <= 3
    assert chosen_designs(results, 3)[0].name == head.design


def test_report_command_rerenders(tmp_path: Path, cli: Callable[..., Result]) -> None:
    results = _results(tmp_path)
    run_dir = tmp_path / "r"
    (run_dir / "report").mkdir(parents=True)
    (run_dir / "report" / "results.json").write_text(json.dumps(results.to_json()))
    out = cli("report", run_dir, "--json")
    assert out.exit_code == 0, out.output
    assert (run_dir / "report" / "report.html").is_file()
    bad = cli("report", tmp_path / "missing")
    assert bad.exit_code == 2 and "not found" in bad.output


def test_mac_proxy_hypervolume_wording_for_zero_and_nonzero(tmp_path: Path) -> None:
    results = _results(tmp_path)
    assert results.mac_proxy is not None
    results.hypervolume.front_test = 1.25
    results.mac_proxy.hypervolume_test = 0.0
    text = " ".join(summary_text(results))
    assert "hypervolume of 0 (none of its designs dominates the reference point) against 1.2500" in text
    results.mac_proxy.hypervolume_test = 0.5
    assert "0.5000 against 1.2500 for the hardware-aware search (2.50x)" in " ".join(summary_text(results))


def test_compare_fronts_at_equal_test_accuracy(tmp_path: Path, cli: Callable[..., Result]) -> None:
    import math

    import pytest

    from exitspace.errors import DataError
    from exitspace.report.compare import compare_fronts

    results = _results(tmp_path)
    ref = results.static_reference_entry().test["elp"]
    best_acc = max(e.test["accuracy"] for e in results.pareto)
    table = compare_fronts([("a", results), ("b", results)], [0.0, best_acc, best_acc + 0.01])
    row = table["rows"][0]
    assert row["lowest_elp"][0] == pytest.approx(min(e.test["elp"] for e in results.pareto) / ref)
    at_best = [e.test["elp"] / ref for e in results.pareto if e.test["accuracy"] >= best_acc]
    assert row["lowest_elp"][1] == pytest.approx(min(at_best)) and math.isnan(row["lowest_elp"][2])
    only_48 = [e.test["elp"] / ref for e in results.pareto if e.design.precision == [4, 8]]
    assert compare_fronts([("a", results)], [0.0], "4/8")["rows"][0]["lowest_elp"][0] == pytest.approx(min(only_48))
    # another run whose own static reference is a different network, but which costs a's the same: comparable
    other = results.model_copy(deep=True)
    unit_name = results.static_reference_entry().name
    assert any(e.name == unit_name for e in other.static_variants[other.static_reference])
    other.static[other.static_reference] = results.static_reference_entry().model_copy(
        update={"name": "another head", "test": {"elp": ref * 0.9, "accuracy": 0.5}})
    row_b = compare_fronts([("a", results), ("b", other)], [0.0])["rows"][1]
    assert row_b["static_accuracy"] == 0.5 and row_b["lowest_elp"][0] == pytest.approx(row["lowest_elp"][0])
    # other hardware: every static network costs twice as much
    for entries in other.static_variants.values():
        for entry in entries:
            entry.test["elp"] *= 2
    with pytest.raises(DataError, match=rf"static network {unit_name} has ELP .* in a; compare runs of the same"):
        compare_fronts([("a", results), ("b", other)], [0.5])

    path = tmp_path / "results.json"
    path.write_text(json.dumps(results.to_json()))
    ok = cli("compare", path, path, "--json", "--accuracies", "0.0")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["rows"][1]["lowest_elp"][0] == pytest.approx(row["lowest_elp"][0])
    bad = cli("compare", path, "--accuracies", "0.8,x")
    assert bad.exit_code == 2 and "--accuracies" in bad.output
