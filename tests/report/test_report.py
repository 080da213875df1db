import html
import math
import re

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from eval.analysis.leaderboard import compare_runs
from eval.data.datasets import Dataset
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.metrics import METRICS
from eval.report.render import (
    format_cell,
    leaderboard_frame,
    report_html,
    report_markdown,
    report_metrics,
    write_report,
)
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.runs.summary import summarize
from eval.schema import Document, Question
from eval.sweep.engine import SweepOptions, run_sweep

PAYLOAD = "<script>alert(1)</script>"
SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [2, 3]},
        {"search_type": "mmr", "k": [2], "fetch_k": [4], "lambda_mult": [0.5]},
    ]
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    corpus = [
        Document("evil", f"Chroma stores vectors. {PAYLOAD} The cosine space keeps scores in [0, 1]."),
        Document("k", "The k parameter sets how many chunks the retriever returns."),
        Document("bread", "To bake bread, mix flour, water, salt and yeast."),
        Document("zh", "中文文本按句号切分。块的大小决定检索的粒度。"),
    ]
    questions = [
        Question("q1", f"Which space keeps scores in range? {PAYLOAD}", (f"cosine {PAYLOAD}",), ("evil",)),
        Question("q2", "How many chunks does k return?", ("k",), ("k",)),
        Question("q3", "怎样切分中文文本？", ("句号",), ("zh",)),
    ]
    root = tmp_path_factory.mktemp("report")
    index_store = IndexStore(root / "indexes")
    index_store.build(
        Dataset("hostile", corpus, questions), "idx<img src=x onerror=alert(2)>", "minilm", ChunkingParams(200, 0)
    )
    index = index_store.open("idx<img src=x onerror=alert(2)>")
    runs = RunStore(root / "runs")
    run_id = run_sweep(runs, index, parse_sweep(SWEEP), questions, "inline", SweepOptions(latency_sample=1))
    return runs.load(run_id)


def test_html_report_escapes_user_text(hostile, tmp_path):
    run = hostile
    text = report_html(run, worst=3)
    assert text.count('<meta charset="utf-8">') == 1
    assert PAYLOAD not in text
    assert html.escape(PAYLOAD) in text
    # the question, the chunk text and the index name each appear escaped
    assert html.escape(f"Which space keeps scores in range? {PAYLOAD}") in text
    assert html.escape(f"Chroma stores vectors. {PAYLOAD}") in text
    assert "alert(1)" in text
    assert "<img" not in text and html.escape("idx<img src=x onerror=alert(2)>") in text
    # plotly.js is inlined exactly once and the charts are there
    assert text.count(get_plotlyjs()) == 1
    assert text.count("Plotly.newPlot") >= 3
    assert "怎样切分中文文本" in text
    path = write_report(run, tmp_path / "report.html", "html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """The Markdown report's leaderboard: config id -> {column: cell}."""
    lines = text[text.index("## Leaderboard") :].splitlines()
    table = [line for line in lines[1 : lines.index("", 2)] if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split(" | ")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split(" | ")))) for line in table[2:]]
    return {row["config_id"]: row for row in rows}


def test_markdown_report(hostile, tmp_path):
    run = hostile
    text = report_markdown(run)
    assert "## Leaderboard" in text and PAYLOAD not in text
    metrics = report_metrics(run)
    summary = summarize(run, metrics=metrics).set_index("config_id")
    rows = markdown_rows(text)
    assert sorted(rows) == sorted(c["config_id"] for c in run.configs)
    for config_id, row in rows.items():
        for metric in metrics:
            mean, low, high = summary.loc[config_id, [f"{metric}_{s}" for s in ("mean", "low", "high")]]
            assert row[METRICS[metric].label] == f"{mean:.3f} [{low:.3f}, {high:.3f}]", (config_id, metric)
        assert row["retrieval_ms_p50"] == f"{summary.loc[config_id, 'retrieval_ms_p50']:.2f}"
    path = write_report(run, tmp_path / "report.md", "md")
    assert path.read_text(encoding="utf-8") == text


def test_write_report_rejects_unknown_format(hostile, tmp_path):
    from eval.errors import LabError

    with pytest.raises(LabError):
        write_report(hostile, tmp_path / "x", "pdf")


def test_comparison_report_of_two_runs(tmp_path, sample_index, sample_dataset):
    from eval.report.render import comparison_html
    from eval.retrievers.registry import parse_sweep
    from eval.runs.store import RunStore
    from eval.sweep.engine import SweepOptions, run_sweep

    store = RunStore(tmp_path)
    grid = parse_sweep({"configs": [{"search_type": "similarity", "k": [2, 4]}]})
    runs = [
        store.load(
            run_sweep(store, sample_index, grid, sample_dataset.questions[:n], "sample", SweepOptions(latency_sample=0))
        )
        for n in (4, 6)
    ]
    html = comparison_html(*runs)
    assert "Plotly.newPlot" in html and "<script src=" not in html  # plotly.js inline: works offline
    assert html.count(get_plotlyjs()) == 1
    assert f"Run {runs[0].run_id} (a) vs run {runs[1].run_id} (b)" in html
    expected = compare_runs(*runs).set_index("config_id")
    shown = html_rows(html[html.index("<h2>Per configuration") :])
    assert sorted(shown) == sorted(expected.index)
    metrics = [c[: -len("_a")] for c in expected.columns if c.endswith("_a")]
    for config_id, cells in shown.items():
        for metric in metrics:
            name = METRICS[metric].label
            a, b = expected.loc[config_id, [f"{metric}_a", f"{metric}_b"]]
            assert [float(cells[f"{name} a"]), float(cells[f"{name} b"])] == pytest.approx([a, b], abs=5e-4)
            change, low, high = [float(v) for v in re.findall(r"[-+]\d+\.\d+", cells[f"{name} change"])]
            assert [change, low, high] == pytest.approx(
                expected.loc[config_id, [f"{metric}_delta", f"{metric}_delta_low", f"{metric}_delta_high"]].tolist(),
                abs=5e-4,
            )


def html_rows(text: str) -> dict[str, dict[str, str]]:
    """The first HTML table in `text`: first cell -> {column: cell}."""
    table = text[text.index("<table>") : text.index("</table>")]
    header = re.findall(r"<th>(.*?)</th>", table)
    rows = [dict(zip(header, re.findall(r"<td>(.*?)</td>", row))) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    return {row[header[0]]: row for row in rows if row}


def test_leaderboard_cells_show_missing_values_as_a_dash_and_sort_best_first():
    nan = math.nan
    summary = pd.DataFrame(
        {
            "config_id": ["similarity-k2", "mmr-k2-f4-l0.5", "threshold-k3-t0.9"],
            "search_type": ["similarity", "mmr", "similarity_score_threshold"],
            "k": [2, 2, 3],
            "fetch_k": [nan, 4, nan],
            "lambda_mult": [nan, 0.5, nan],
            "score_threshold": [nan, nan, 0.9],
            "filter": ["", "", ""],
            "ndcg_mean": [0.5, 0.75, nan],
            "ndcg_low": [0.25, 0.5, nan],
            "ndcg_high": [0.625, 1.0, nan],
            "ndcg_sig": [False, True, False],
            "retrieval_ms_p50": [1.5, nan, 2.25],
            "retrieval_ms_p95": [2.0, nan, 3.0],
        }
    )
    table = leaderboard_frame(summary, ["ndcg"], sort_by="ndcg")
    assert table.config_id.tolist() == ["mmr-k2-f4-l0.5", "similarity-k2", "threshold-k3-t0.9"]
    rows = table.set_index("config_id")
    assert rows.loc["mmr-k2-f4-l0.5", "nDCG"] == "0.750 [0.500, 1.000] *"
    assert rows.loc["similarity-k2", "nDCG"] == "0.500 [0.250, 0.625]"
    assert rows.loc["threshold-k3-t0.9", "nDCG"] == "- [-, -]"
    assert rows.loc["similarity-k2", ["fetch_k", "lambda_mult", "retrieval_ms_p50"]].tolist() == ["", "", "1.50"]
    assert rows.loc["mmr-k2-f4-l0.5", ["fetch_k", "lambda_mult", "retrieval_ms_p50"]].tolist() == ["4", "0.500", "-"]
    assert not table.map(lambda cell: "nan" in cell.lower()).any().any()
    assert [format_cell(v) for v in (None, nan, 0.12345, 3, "mmr")] == ["-", "-", "0.123", "3", "mmr"]
