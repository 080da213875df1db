"""Threshold values seeded from the index, the warning for thresholds that filter nothing, identical configs,
and calibration refusing labels that name no document of the index."""

import dataclasses

import pandas as pd
import pytest

from eval.analysis.calibration import score_calibration, threshold_grid
from eval.analysis.diagnostics import inert_thresholds, run_warnings
from eval.errors import LabError
from eval.index.store import IndexStore
from eval.schema import Question
from eval.sweep.engine import identical_configs


def test_identical_configs_need_the_same_chunks_in_the_same_order_on_every_question():
    rows = pd.DataFrame(
        {
            "question_id": ["q1", "q2"] * 4,
            "config_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "chunk_ids": [["x", "y"], ["z"], ["x", "y"], ["z"], ["y", "x"], ["z"], ["x", "y"], []],
        }
    )
    assert identical_configs(rows) == [["a", "b"]]
    configs = [
        {"config_id": "a", "search_type": "similarity", "k": 2, "filter": None},
        {"config_id": "b", "search_type": "similarity_score_threshold", "k": 2, "filter": None},
        {"config_id": "d", "search_type": "similarity_score_threshold", "k": 2, "filter": None},
    ]
    assert inert_thresholds(configs, [["a", "b"]]) == [("b", "a")]
    assert inert_thresholds(configs, []) == []


def test_calibration_refuses_labels_that_name_no_document_of_the_index(sample_index):
    with pytest.raises(LabError, match=r"question 'x' names documents that are not in index 'sample'.*right index"):
        score_calibration(sample_index, [Question("x", "what is chunking?", (), ("not-a-doc",))])


def test_threshold_values_come_from_the_index_and_fixed_defaults_are_flagged(sample_index, sample_dataset, sample_run):
    questions = sample_dataset.questions[:10]
    values, why = threshold_grid(sample_index, questions, top_n=4)
    assert "calibration" in why and len(values) >= 2
    scores = score_calibration(sample_index, questions, top_n=4)["score"]
    assert all(scores.min() < v < scores.max() for v in values)  # inside the index's score range

    unlabelled = [dataclasses.replace(q, relevant_ids=()) for q in questions]
    plain_values, why = threshold_grid(sample_index, unlabelled, top_n=4)
    assert "score distribution" in why
    assert plain_values == sorted({round(v, 3) for v in scores.quantile([0.25, 0.5, 0.75])})

    fixed = sample_run(
        {
            "configs": [
                {"search_type": "similarity", "k": 4},
                {"search_type": "similarity_score_threshold", "k": 4, "score_threshold": [0.3, 0.5]},
            ]
        },
        latency_sample=0,
    )
    warnings = run_warnings(fixed)
    assert len(warnings) == 2 and all("similarity-k4" in w for w in warnings)
    assert "threshold-k4-t0.3 returned exactly what similarity-k4 returned" in warnings[0]

    seeded = sample_run(
        {
            "configs": [
                {"search_type": "similarity", "k": 4},
                {"search_type": "similarity_score_threshold", "k": 4, "score_threshold": values},
            ]
        },
        latency_sample=0,
    )
    assert run_warnings(seeded) == []
    n = seeded.rows.groupby("config_id").n_retrieved.mean()
    assert all(n[f"threshold-k4-t{v:g}"] < n["similarity-k4"] for v in values)


def test_dashboard_seeds_thresholds_refuses_foreign_labels_and_warns(
    app, dashboard_lab, tiny_index_store, tiny_dataset
):
    from eval.data.datasets import load_question_set
    from eval.retrievers.registry import parse_sweep
    from eval.runs.store import RunStore
    from eval.sweep.engine import SweepOptions, run_sweep

    at = app("dashboard/pages/sweep.py")
    at.selectbox(key="sweep-index").set_value("tiny")
    at.radio(key="sweep-questions-source").set_value("Folder or file path").run()
    at.text_input(key="sweep-questions-path").set_value(str(dashboard_lab["data"])).run()
    index = IndexStore(dashboard_lab["home"] / "indexes").open("tiny")
    values, why = threshold_grid(index, load_question_set(dashboard_lab["data"]))
    assert at.text_input(key="grid-threshold").value == ", ".join(f"{v:g}" for v in values)
    assert any(why in c.value for c in at.caption)

    at = app("dashboard/pages/indexes.py")  # the bundled sample's labels name documents the tiny index lacks
    at.selectbox(key="cal-index").set_value("tiny")
    at.button(key="calibrate").click().run()
    assert not at.exception and not at.get("plotly_chart")
    assert "names documents that are not in index 'tiny'" in at.error[0].value

    runs = RunStore(dashboard_lab["home"] / "runs")
    run_id = run_sweep(
        runs,
        index,
        parse_sweep(
            {
                "configs": [
                    {"search_type": "similarity", "k": 2},
                    {"search_type": "similarity_score_threshold", "k": 2, "score_threshold": 0.0},
                ]
            }
        ),
        tiny_dataset.questions,
        str(dashboard_lab["data"]),
        SweepOptions(latency_sample=0),
    )
    at = app("dashboard/pages/compare.py")
    at.selectbox(key="compare-run").set_value(run_id).run()
    assert any("threshold-k2-t0 returned exactly what similarity-k2 returned" in w.value for w in at.warning)


def test_reports_carry_the_threshold_warning(sample_run):
    from eval.report.render import esc, report_html, report_markdown

    fixed = sample_run(
        {
            "configs": [
                {"search_type": "similarity", "k": 4},
                {"search_type": "similarity_score_threshold", "k": 4, "score_threshold": [0.3, 0.5]},
            ]
        },
        latency_sample=0,
    )
    warning = run_warnings(fixed)[0]
    assert "**Warning:** " + warning.replace("_", "\\_") in report_markdown(fixed)  # Markdown-escaped
    assert f'<p class="warning">{esc(warning)}</p>' in report_html(fixed)


def test_chinese_questions_on_bm25_that_cannot_split_chinese_are_flagged(sample_run):
    spec = {
        "configs": [
            {"search_type": "bm25", "k": 3, "tokenizer": ["words", "jieba"]},
            {
                "search_type": "ensemble",
                "weights": [0.5, 0.5],
                "retrievers": [
                    {"search_type": "bm25", "k": 3, "tokenizer": "whitespace"},
                    {"search_type": "similarity", "k": 3},
                ],
            },
            {"search_type": "similarity", "k": 3},
        ]
    }
    chinese = run_warnings(sample_run(spec, questions=slice(0, 8), latency_sample=0))
    assert len(chinese) == 1 and chinese[0].startswith("8 of the 8 questions are Chinese, but bm25-k3-words, hybrid-")
    assert "jieba" not in chinese[0].split(" run BM25")[0]  # the jieba config is fine
    assert run_warnings(sample_run(spec, questions=slice(32, 40), latency_sample=0)) == []  # English questions


@pytest.mark.slow
def test_an_index_built_by_another_encoder_is_flagged_by_the_cli_and_the_run(tiny_dataset, tmp_path, capsys):
    """An index whose manifest names another build of its encoder (an older library or export): `run` and
    `run-family` warn before they start, and the run's warnings (Compare, reports) say to rebuild."""
    import json

    from support.tiny_corpus import write_dataset

    from eval.cli.main import main
    from eval.index.chunking import ChunkingParams
    from eval.runs.store import RunStore

    home = tmp_path / "home"
    store = IndexStore(home / "indexes")
    store.build(tiny_dataset, "tiny", "minilm", ChunkingParams(120, 20))
    data = write_dataset(tmp_path / "data", tiny_dataset)
    command = ["--home", str(home), "run", "--index", "tiny", "--questions", str(data), "--limit", "2"]
    assert main(command) == 0
    assert "warning" not in capsys.readouterr().err
    (first,) = [m["run_id"] for m in RunStore(home / "runs").list()]
    assert run_warnings(RunStore(home / "runs").load(first)) == []

    manifest_file = home / "indexes" / store.manifest("tiny").slug / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    current = manifest["encoder"]
    manifest["encoder"] = current.replace("sentence-transformers=", "sentence-transformers=0.")
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    assert main(command) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: index 'tiny' was built by encoder {manifest['encoder']}, and questions are now encoded by "
        f"{current}: rebuild it" in err
    )
    (second,) = [m["run_id"] for m in RunStore(home / "runs").list() if m["run_id"] != first]
    (warning,) = run_warnings(RunStore(home / "runs").load(second))
    assert warning.startswith(
        f"The questions were encoded by {current}, but index 'tiny' was built by {manifest['encoder']}"
    )
    # a family sweep says it before it starts too
    assert main(["--home", str(home), "run-family", "--index", "tiny", "--questions", str(data), "--limit", "2"]) == 0
    assert f"warning: index 'tiny' was built by encoder {manifest['encoder']}" in capsys.readouterr().err
