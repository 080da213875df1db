import html
import re

import pytest

from eval.config import parse_sweep
from eval.datasets import Dataset, Document, Question
from eval.index import ChunkingParams, IndexStore
from eval.report import report_html, report_markdown, write_report
from eval.runs import RunStore
from eval.sweep import SweepOptions, run_sweep

PAYLOAD = "<script>alert(1)</script>"
SWEEP = {"configs": [{"search_type": "similarity", "k": [2, 3]},
                     {"search_type": "mmr", "k": [2], "fetch_k": [4], "lambda_mult": [0.5]}]}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    corpus = [Document("evil", f"Chroma stores vectors. {PAYLOAD} The cosine space keeps scores in [0, 1]."),
              Document("k", "The k parameter sets how many chunks the retriever returns."),
              Document("bread", "To bake bread, mix flour, water, salt and yeast."),
              Document("zh", "中文文本按句号切分。块的大小决定检索的粒度。")]
    questions = [Question("q1", f"Which space keeps scores in range? {PAYLOAD}", (f"cosine {PAYLOAD}",), ("evil",)),
                 Question("q2", "How many chunks does k return?", ("k",), ("k",)),
                 Question("q3", "怎样切分中文文本？", ("句号",), ("zh",))]
    root = tmp_path_factory.mktemp("report")
    index_store = IndexStore(root / "indexes")
    index_store.build(Dataset("hostile", corpus, questions), "idx<img src=x onerror=alert(2)>", "minilm", ChunkingParams(200, 0))
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
    assert len(re.findall(r"plotly\.js v\d", text)) <= 2
    assert text.count("Plotly.newPlot") >= 3
    assert "怎样切分中文文本" in text
    path = write_report(run, tmp_path / "report.html", "html")
    assert path.read_text(encoding="utf-8") .startswith("<!DOCTYPE html>")


def test_markdown_report(hostile, tmp_path):
    run = hostile
    text = report_markdown(run)
    assert "## Leaderboard" in text and PAYLOAD not in text
    for config in run.configs:
        assert config["config_id"] in text
    path = write_report(run, tmp_path / "report.md", "md")
    assert path.read_text(encoding="utf-8") == text


def test_write_report_rejects_unknown_format(hostile, tmp_path):
    from eval.errors import LabError

    with pytest.raises(LabError):
        write_report(hostile, tmp_path / "x", "pdf")


def test_comparison_report_of_two_runs(tmp_path, sample_index, sample_dataset):
    from eval.config import parse_sweep
    from eval.report import comparison_html
    from eval.runs import RunStore
    from eval.sweep import SweepOptions, run_sweep

    store = RunStore(tmp_path)
    grid = parse_sweep({"configs": [{"search_type": "similarity", "k": [2, 4]}]})
    runs = [store.load(run_sweep(store, sample_index, grid, sample_dataset.questions[:n], "sample",
                                 SweepOptions(latency_sample=0))) for n in (4, 6)]
    html = comparison_html(*runs)
    assert "Plotly.newPlot" in html and "<script src=" not in html  # plotly.js inline: works offline
    assert f"Run {runs[0].run_id} (a) vs run {runs[1].run_id} (b)" in html
    assert "ndcg_delta" in html and "similarity-k4" in html
