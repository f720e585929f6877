"""The run report: results JSON, figures, Markdown and a static, offline HTML page.

Layout in ``<run dir>/report/``: ``results.json``, ``report.md``, ``report.html`` (figures embedded as
base64, opens offline) and ``figures/*.png`` (linked from the Markdown).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from exitspace.files import atomic_write_text
from exitspace.precision import pair_label
from exitspace.report import figures
from exitspace.search.results import (
    Headline, ParetoRecord, ResultsDocument, ScoredRecord, SpaceRecord, StudyRecord, dump_results,
)

Block = tuple[str, Any]
MAX_ROWS = 30


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _hypervolume_comparison(ours: float, theirs: float) -> str:
    """'THEIRS against OURS for the hardware-aware search (ratio)', worded for a zero hypervolume too."""
    if theirs <= 1e-9:
        return (f"0 (none of its designs dominates the reference point) against {ours:.4f} for the "
                "hardware-aware search")
    return f"{theirs:.4f} against {ours:.4f} for the hardware-aware search ({ours / theirs:.2f}x)"


def chosen_designs(results: ResultsDocument, count: int) -> list[ParetoRecord]:
    """The headline design plus designs spread along the front by ELP (at most ``count``)."""
    front = sorted(results.pareto, key=lambda e: e.test["elp"])
    head = results.headline.design
    chosen = [e for e in front if e.name == head]
    if len(front) > 1 and count > 1:
        step = (len(front) - 1) / max(1, count - 1)
        for i in range(count):
            e = front[round(i * step)]
            if e not in chosen:
                chosen.append(e)
    return chosen[:count] if chosen else front[:count]


def summary_text(results: ResultsDocument) -> list[str]:
    """A few sentences on what was found (every number from ``results``)."""
    study = results.study
    head = results.headline
    ref = results.static_reference
    return [
        f"The search evaluated {study.trials} designs ({study.feasible} feasible) with NSGA-II "
        f"(population {study.population}); {len(results.pareto)} designs are Pareto-optimal on the validation "
        f"split for {', '.join(results.objectives)}. Figures below are on the test split.",
        _headline_sentence(head, ref),
        *_per_final_head_sentences(head, ref),
        _static_sentence(results.static, ref),
        *_mac_proxy_sentences(results, head, ref),
        *_paper_sentences(results, ref),
        _precision_pairs_sentence(results.pareto),
        "Subset accuracies come from one supernet per precision pair, all heads trained in one run (train once, search many): a "
        "design's exits are scored exactly from cached logits, without re-training; `exitspace finetune` trains a "
        "chosen design alone and scores it again.",
    ]


def _headline_sentence(head: Headline, ref: str) -> str:
    """The ELP cut of the design chosen on validation within the accuracy-loss budget, or that none is within it."""
    if head.elp_reduction is not None:
        return (
            f"At most {head.max_loss_points:.0f} point of accuracy loss against the static {ref} network "
            f"(test accuracy {_pct(head.static_test_accuracy, 2)}), the design chosen on validation, "
            f"**{head.design}**, cuts the ELP by **{_pct(head.elp_reduction)}** on test (accuracy "
            f"{_pct(head.test_accuracy or 0.0, 2)}, loss {head.test_accuracy_loss_points or 0.0:.2f} points; "
            f"E_avg*L_avg reduced by {_pct(head.elp_product_reduction or 0.0)})."
        )
    return (
        f"No Pareto design stays within {head.max_loss_points:.0f} point of the static {ref} network's accuracy "
        "on validation."
    )


def _per_final_head_sentences(head: Headline, ref: str) -> list[str]:
    """The headline against the static network of each final head type (when there are several)."""
    each = [h for h in head.against_each_final_head if h.elp_reduction is not None]
    if len(each) <= 1:
        return []
    return [
        f"The static baseline is the cheapest static {ref} network within 1 point of the most accurate one (one "
        "per final head type, each on its best allocation). Against each of them in turn: "
        + "; ".join(f"{(h.reference or '').split('(')[-1].rstrip(')')} (accuracy "
                    f"{_pct(h.static_test_accuracy or 0.0, 2)}): -{_pct(h.elp_reduction or 0.0)} ELP at "
                    f"{h.test_accuracy_loss_points or 0.0:.2f} points"
                    for h in each)
        + "."
    ]


def _static_sentence(statics: dict[str, ScoredRecord], ref: str) -> str:
    """Accuracy and relative ELP of every static network."""
    return (
        "Static networks: "
        + "; ".join(
            f"{k}: accuracy {_pct(v.test['accuracy'], 2)}, ELP {v.test['elp'] / statics[ref].test['elp']:.2f}x of {ref}"
            for k, v in statics.items()
        )
        + "."
    )


def _mac_proxy_sentences(results: ResultsDocument, head: Headline, ref: str) -> list[str]:
    """The MAC-proxy search against the hardware-aware one: hypervolume, and ELP within the same accuracy loss."""
    mac = results.mac_proxy
    if not (mac and mac.front):
        return []
    statics = results.static
    ours = results.hypervolume.front_test
    theirs = mac.hypervolume_test
    lines = [
        "Hardware-awareness: the MAC-proxy search (accuracy vs expected MACs, same space and budget), re-costed "
        f"with the cost model, reaches a test hypervolume of {_hypervolume_comparison(ours, theirs)}."
    ]
    best_mac = _best_within(mac.front, statics[ref].test["accuracy"], head.max_loss_points / 100)
    if best_mac is not None and head.elp_reduction is not None:
        change = 1 - best_mac.test["elp"] / statics[ref].test["elp"]
        verb = f"cuts the ELP by {_pct(change)}" if change >= 0 else f"raises the ELP by {_pct(-change)}"
        worse = change < head.elp_reduction - 0.05
        lines.append(
            f"Within the same accuracy loss on test, the MAC-proxy front's lowest-ELP design {verb} against the "
            f"static {ref} network ({best_mac.name})"
            + (f", against -{_pct(head.elp_reduction)} for the hardware-aware search." if worse else ".")
        )
    return lines


def _paper_sentences(results: ResultsDocument, ref: str) -> list[str]:
    """The accuracy range and lowest ELP of the paper's published designs (when they were scored)."""
    paper = results.paper_designs
    if not paper:
        return []
    statics = results.static
    best = min(paper, key=lambda e: e.test["elp"])
    return [
        f"The paper's five published designs, scored on this supernet and cost model, reach test accuracy "
        f"{_pct(min(e.test['accuracy'] for e in paper))}-{_pct(max(e.test['accuracy'] for e in paper))}; "
        f"the lowest ELP among them is {best.test['elp'] / statics[ref].test['elp']:.2f}x of static {ref} "
        f"({best.name})."
    ]


def _precision_pairs_sentence(pareto: list[ParetoRecord]) -> str:
    """How many Pareto designs use each precision pair."""
    pairs: dict[str, int] = {}
    for e in pareto:
        key = pair_label(e.design.precision)
        pairs[key] = pairs.get(key, 0) + 1
    return "Precision pairs on the front: " + ", ".join(f"{k} ({v})" for k, v in sorted(pairs.items())) + "."


def _best_within(front: list[ScoredRecord], static_acc: float, max_loss: float) -> ScoredRecord | None:
    ok = [e for e in front if e.test["accuracy"] >= static_acc - max_loss]
    return min(ok, key=lambda e: e.test["elp"]) if ok else None


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def build_blocks(results: ResultsDocument, figs: dict[str, Path], designs: int) -> list[Block]:
    """The report as a list of blocks, rendered to Markdown and HTML alike."""
    ref = results.static_reference
    ref_elp = results.static_reference_entry().test["elp"]
    return [
        *_intro_blocks(results),
        ("h2", "What was found"),
        *(("p", line) for line in summary_text(results)),
        *_pareto_blocks(results, figs, ref, ref_elp),
        *_baseline_blocks(results, ref, ref_elp),
        *_exit_ratio_blocks(results, designs),
        *_oracle_blocks(results, designs),
        *_cost_and_hypervolume_blocks(results, figs),
        *_run_blocks(results.study),
    ]


def _intro_blocks(results: ResultsDocument) -> list[Block]:
    """Title, run setup, design space, hardware and cost backend, and the configured note."""
    blocks: list[Block] = [("h1", f"exitspace report: {results.name}")]
    blocks.append(("p", f"Backbone {results.backbone or '?'}; objectives {', '.join(results.objectives)} "
                        f"(ELP: {results.elp_definition} definition); constraints: "
                        f"{'; '.join(results.constraints) or 'none'}. Designs selected on validation, reported on test."))
    blocks.append(("p", _space_text(results.space)))
    facts = {"hardware": results.hardware, "cost backend": results.cost_backend, "exit tables": results.exit_tables}
    where = [f"{label}: {value}" for label, value in facts.items() if value]
    if where:
        blocks.append(("p", "; ".join(where) + "."))
    note = results.config.get("report", {}).get("note")
    if note:
        blocks.append(("p", f"Note: {note.strip()}"))
    return blocks


def _space_text(space: SpaceRecord) -> str:
    """One sentence on the design space searched."""
    thr = space.thresholds
    return (f"Design space: early exits from {', '.join(space.candidate_exits)} (final exit "
            f"{space.final_exit} always on), head types "
            f"{', '.join(sorted({h for v in space.head_types.values() for h in v}))}, precision pairs "
            f"{', '.join(pair_label(p) for p in space.precision_pairs)}, {thr.mode} "
            f"thresholds in [{thr.low}, {thr.high}] ({space.confidence}), policies "
            f"{', '.join(space.policies)}, allocation {', '.join(space.allocations)}"
            f"{' then ' + space.refine_allocation + ' refinement of the front' if space.refine_allocation else ''}.")


def _pareto_blocks(results: ResultsDocument, figs: dict[str, Path], ref: str, ref_elp: float) -> list[Block]:
    """The Pareto figure and a table of the front (at most ``MAX_ROWS`` designs, evenly spread by test accuracy)."""
    blocks: list[Block] = [("h2", "Pareto front")]
    blocks.append(("img", (figs["pareto"], "Accuracy vs ELP on test; grey: all trials; squares: static networks")))
    rows = []
    ordered = sorted(results.pareto, key=lambda e: -e.test["accuracy"])
    shown = ordered if len(ordered) <= MAX_ROWS else [ordered[round(i * (len(ordered) - 1) / (MAX_ROWS - 1))]
                                                      for i in range(MAX_ROWS)]
    if len(shown) < len(ordered):
        blocks.append(("p", f"{len(shown)} of the {len(ordered)} Pareto designs, evenly spread by test accuracy "
                            "(all in results.json):"))
    ref_product = results.static_reference_entry().test["elp_product"]
    for e in shown:
        rows.append([e.name, _pct(e.test["accuracy"], 2), _pct(e.val["accuracy"], 2),
                     f"{e.test['elp'] / ref_elp:.3f}", f"{e.test['elp_product'] / ref_product:.3f}",
                     _pct(e.test["exit_overhead"]), _pct(e.test["early_exit_share"]), _fmt(e.test["p99_latency"])])
    blocks.append(("table", (["design", "test acc", "val acc", f"ELP / static {ref}", "E_avg*L_avg / static",
                              "exit overhead", "early-exit share", "p99 latency (cycles)"], rows)))
    return blocks


def _baseline_blocks(results: ResultsDocument, ref: str, ref_elp: float) -> list[Block]:
    """A table of the static networks (final-head variants at the reference pair, then one per pair) and the
    paper's designs."""
    base_rows = [_baseline_row(f"static {e.name}", e, ref_elp) for e in results.static_variants.get(ref, [])]
    base_rows += [_baseline_row(f"static {name}", e, ref_elp) for name, e in results.static.items()]
    base_rows += [_baseline_row(f"paper: {e.name}", e, ref_elp) for e in results.paper_designs]
    return [
        ("h2", "Baselines"),
        ("p", f"Static networks: first every final head type at {ref} (each on its best allocation), then the "
              "baseline chosen per precision pair (the cheapest within 1 point of the most accurate)."),
        ("table", (["baseline", "test acc", f"ELP / static {ref}", "E_avg (pJ)", "L_avg (cycles)"], base_rows)),
    ]


def _baseline_row(label: str, e: ScoredRecord, ref_elp: float) -> list[str]:
    """One row of the baselines table."""
    return [label, _pct(e.test["accuracy"], 2), f"{e.test['elp'] / ref_elp:.3f}",
            _fmt(e.test["e_avg"]), _fmt(e.test["l_avg"])]


def _exit_ratio_blocks(results: ResultsDocument, designs: int) -> list[Block]:
    """Per chosen design, a table of its exits: head, threshold, exit ratio and accuracy at the exit (test)."""
    blocks: list[Block] = [("h2", "Chosen designs: exit ratios")]
    chosen = chosen_designs(results, designs)
    for e in chosen:
        ratios, accs = e.exit_ratios.get("test", []), e.exit_accuracy.get("test", [])
        labels = [s["exit"] for s in e.stages] or [*e.design.exits, e.design.final]
        head_map = e.design.heads
        thr: list[float | None] = [*e.design.thresholds, None]
        rows = [[lab, head_map.get(lab, ""), "-" if t is None else f"{t:.2f}", _pct(r), _pct(a)]
                for lab, t, r, a in zip(labels, thr, ratios, accs)]
        blocks.append(("h3", e.name))
        blocks.append(("table", (["exit", "head", "threshold", "exit ratio (test)", "accuracy at exit"], rows)))
    return blocks


def _oracle_blocks(results: ResultsDocument, designs: int) -> list[Block]:
    """Oracle bounds of the chosen designs (test): (a) each sample leaves at the first exit agreeing with the
    final exit, (b) at the first exit that is right; each design's ELP as a multiple of (a) at its accuracy."""
    chosen = [e for e in chosen_designs(results, designs) if "test" in (e.oracle or {})]
    if not chosen:
        return []
    rows = []
    for e in chosen:
        bounds = (e.oracle or {})["test"]
        a, b, relaxed = bounds["a"], bounds["b"], bounds["a_at_design_accuracy"]
        multiple = bounds["elp_vs_oracle_a"]
        rows.append([e.name, _pct(e.test["accuracy"], 2), _fmt(e.test["elp"]), _pct(a["accuracy"], 2),
                     _fmt(a["elp"]), _pct(relaxed["accuracy"], 2), _fmt(relaxed["elp"]),
                     "-" if multiple is None else f"{multiple:.2f}x", _pct(b["accuracy"], 2),
                     " / ".join(_pct(r) for r in a["ratios"])])
    return [
        ("h2", "Oracle bounds of the chosen designs"),
        ("p", "Oracle (a): each test image leaves at the first of the design's exits whose prediction equals the "
              "final exit's (the final exit's accuracy at the least cost of those answers); oracle (a) at the "
              "design's accuracy: (a) with its costliest right answers sent to the first exit until the accuracy "
              "is the design's; oracle (b): each image leaves at the first exit that is right (the accuracy no exit "
              "rule with these exits can pass). The multiple is the design's ELP over oracle (a) at its accuracy "
              "(goal: within 1.3x; below 1 where the thresholds let images leave early that an early exit gets "
              "right and the final exit wrong). Definitions: docs/metrics.md."),
        ("table", (["design", "accuracy", "ELP", "oracle (a) accuracy", "oracle (a) ELP",
                    "(a) at equal accuracy", "its ELP", "ELP / oracle (a)", "oracle (b) accuracy",
                    "oracle (a) exit ratios"], rows)),
    ]


def _cost_and_hypervolume_blocks(results: ResultsDocument, figs: dict[str, Path]) -> list[Block]:
    """The per-stage cost figure, the hypervolume and its curve, and the alignment sweep when it was run."""
    blocks: list[Block] = [("h2", "Per-stage cost")]
    blocks.append(("img", (figs["stages"], "Energy and latency per exit stage of the chosen designs")))
    blocks.append(("h2", "Hypervolume"))
    hv = results.hypervolume
    blocks.append(("p", f"Reference point {hv.reference_point} ({hv.normalisation}); final test-split "
                        f"hypervolume of the front {hv.front_test:.4f}."))
    blocks.append(("img", (figs["hypervolume"], "Hypervolume after each generation")))
    if "alignment" in figs and results.alignment_sweep is not None:
        blocks.append(("h2", "Alignment sweep of the most costly layers"))
        blocks.append(("p", results.alignment_sweep.note or ""))
        blocks.append(("img", (figs["alignment"], "Energy and latency per MAC as one loop dimension is swept")))
    return blocks


def _run_blocks(study: StudyRecord) -> list[Block]:
    """Where the study is stored, its size and this session's time."""
    return [
        ("h2", "Run"),
        ("p", f"Study {study.name} in {study.storage}: {study.trials} trials, "
              f"{study.seconds:.1f} s this session ({study.eval_seconds:.1f} s evaluating "
              f"{study.new_trials} new trials). Full results: results.json."),
    ]


def _md(text: object) -> str:
    """Text for Markdown: no HTML tag can open (user text such as the note or a hardware name may hold "<")."""
    return str(text).replace("<", "&lt;")


def _md_cell(text: object) -> str:
    """A Markdown table cell: as :func:`_md`, on one line, with its "|" kept inside the cell."""
    return _md(" ".join(str(text).split())).replace("|", "\\|")


def to_markdown(blocks: list[Block], root: Path) -> str:
    """Markdown with figures linked relative to ``root``; text escaped (see :func:`_md`)."""
    out = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md(" ".join(content.split())))
        elif kind == "p":
            out.append(_md(content))
        elif kind == "img":
            path, caption = content
            alt = _md_cell(caption).replace("]", "\\]")
            out.append(f"![{alt}]({Path(path).relative_to(root).as_posix()})")
        elif kind == "table":
            header, rows = content
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], title: str) -> str:
    """A single offline HTML file (figures as base64)."""
    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(content)}</p>")
        elif kind == "img":
            path, caption = content
            data = base64.b64encode(Path(path).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        elif kind == "table":
            header, rows = content
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            body_rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}figcaption{font-size:0.8em;color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(results: ResultsDocument, out_dir: Path, *, designs: int = 5, html_page: bool = True) -> dict[str, Path]:
    """Write results.json, figures, report.md and report.html into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    results_path = out_dir / "results.json"
    atomic_write_text(results_path, dump_results(results))
    paths["results"] = results_path
    figs = {
        "pareto": figures.pareto_figure(results, fig_dir / "pareto.png"),
        "stages": figures.stage_cost_figure(chosen_designs(results, designs), fig_dir / "stage_costs.png"),
        "hypervolume": figures.hypervolume_figure(results, fig_dir / "hypervolume.png"),
    }
    sweep = results.alignment_sweep
    if sweep is not None and sweep.layers:
        figs["alignment"] = figures.alignment_figure(sweep, fig_dir / "alignment_sweep.png")
    paths.update({f"figure:{k}": v for k, v in figs.items()})
    blocks = build_blocks(results, figs, designs)
    md = out_dir / "report.md"
    atomic_write_text(md, to_markdown(blocks, out_dir))
    paths["markdown"] = md
    if html_page:
        page = out_dir / "report.html"
        atomic_write_text(page, to_html(blocks, f"exitspace report: {results.name}"))
        paths["html"] = page
    return paths
