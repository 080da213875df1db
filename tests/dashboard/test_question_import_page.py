"""The Question sets page's "Import real questions" tab and the weighting toggle on Compare, driven offline
with streamlit.testing.v1.AppTest against a temporary data folder."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.dashboard_lab import page_opener

from eval.data.datasets import load_question_set
from eval.metrics import METRICS
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep


@pytest.fixture
def page(tmp_path, monkeypatch):
    return page_opener(tmp_path / "home", monkeypatch, timeout=180)


def logs(folder: Path) -> list[Path]:
    """A Dify annotation JSONL export and a plain list, in Chinese and English."""
    dify = folder / "annotations-zh-Hans.jsonl"
    dify.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": ""},
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": "答"},
                    ]
                },
                ensure_ascii=False,
            )
            + "\n"
            for q in ["如何重置密码？", "如何重置密码", "How do I reset my password?"]
        ),
        encoding="utf-8",
    )
    plain = folder / "list.txt"
    plain.write_text(
        "How do I reset my password?\nCan you tell me how I reset my password?\n如何修改邮箱地址？\n", encoding="utf-8"
    )
    return [dify, plain]


def preview(at: AppTest, paths: list[Path], near: bool = False, encoder: str | None = None) -> AppTest:
    at.radio(key="qimport-source").set_value("Paths").run()
    at.text_area(key="qimport-paths").set_value("\n".join(map(str, paths)))
    at.toggle(key="qimport-near").set_value(near).run()
    if encoder:
        at.selectbox(key="qimport-by").set_value("none (a named encoder)").run()
        at.text_input(key="qimport-encoder").set_value(encoder)
    at.button(key="qimport-preview").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


KEPT, DROPPED = ["id", "question", "weight"], ["dropped", "lines", "as", "cosine", "kept as"]


def table(at: AppTest, columns: list[str]):
    """The one table on the page with these columns."""
    (found,) = [d.value for d in at.dataframe if list(d.value.columns) == columns]
    return found


def import_metrics(at: AppTest) -> dict:
    names = ("Lines read", "Questions kept", "Exact duplicates", "Near duplicates", "Not questions")
    return {m.label: m.value for m in at.metric if m.label in names}


def test_import_previews_kept_and_dropped_questions_and_saves_a_question_set(page, tmp_path):
    at = preview(page("dashboard/pages/questions.py"), logs(tmp_path))
    assert not at.error, [e.value for e in at.error]
    assert import_metrics(at) == {
        "Lines read": "6",
        "Questions kept": "4",
        "Exact duplicates": "2",
        "Near duplicates": "0",
        "Not questions": "6",
    }
    kept = table(at, KEPT)
    assert kept[["question", "weight"]].values.tolist() == [
        ["如何重置密码？", 2],
        ["How do I reset my password?", 2],
        ["Can you tell me how I reset my password?", 1],
        ["如何修改邮箱地址？", 1],
    ]
    dropped = table(at, DROPPED)
    assert sorted(dropped[["dropped", "lines", "as", "kept as"]].values.tolist()) == [
        ["How do I reset my password?", 1, "exact", "How do I reset my password?"],
        ["如何重置密码", 1, "exact", "如何重置密码？"],
    ]
    at.text_input(key="qimport-out").set_value(str(tmp_path / "real")).run()
    at.button(key="qimport-save").click().run()
    assert "Saved 4 questions to" in at.success[0].value
    assert [[q.question, q.weight] for q in load_question_set(tmp_path / "real")] == kept[
        ["question", "weight"]
    ].values.tolist()
    at.button(key="qimport-save").click().run()  # the folder now holds a set: refused in one line
    assert "already holds a question set: choose a new folder" in at.error[0].value


def test_near_duplicates_with_a_named_encoder_show_their_cosine(page, tmp_path):
    at = preview(page("dashboard/pages/questions.py"), logs(tmp_path), near=True, encoder="e5-small")
    dropped = table(at, DROPPED)
    near = dropped[dropped["as"] == "near"]
    assert near[["dropped", "kept as"]].values.tolist() == [
        ["Can you tell me how I reset my password?", "How do I reset my password?"]
    ]
    assert near["cosine"].iloc[0] >= 0.97
    assert import_metrics(at)["Questions kept"] == "3"


def test_a_log_in_an_unknown_shape_is_one_error_line(page, tmp_path):
    bad = tmp_path / "export.jsonl"
    bad.write_text('{"ts": 1, "body": "How do I log in?"}\n', encoding="utf-8")
    at = preview(page("dashboard/pages/questions.py"), [bad])
    assert at.error[0].value.startswith(
        "export.jsonl, line 1: no field named question / query / 问题 (there are: ts, body)"
    )
    assert import_metrics(at) == {}  # no preview


@pytest.fixture
def weighted_run(tmp_path, tiny_index_store, tiny_dataset):
    """A run whose questions carry weights; q2 is labelled with a document that does not answer it (it misses)."""
    from dataclasses import replace

    weights, relevant = {"q1": 1, "q2": 5, "q4": 2}, {"q1": ("mmr",), "q2": ("cooking",), "q4": ("football",)}
    questions = [
        replace(q, relevant_ids=relevant[q.id], spans=(), weight=weights[q.id])
        for q in tiny_dataset.questions
        if q.id in weights
    ]
    store = RunStore(tmp_path / "home" / "runs")
    return store.load(
        run_sweep(
            store,
            tiny_index_store.open("tiny"),
            parse_sweep({"configs": [{"search_type": "similarity", "k": 1}]}),
            questions,
            "weighted",
            SweepOptions(latency_sample=0),
        )
    )


def test_compare_weights_means_only_when_asked_and_says_which(page, weighted_run):
    assert weighted_run.rows.set_index("question_id")["hit_rate"].to_dict() == {"q1": 1.0, "q2": 0.0, "q4": 1.0}
    at = page("dashboard/pages/compare.py")
    column = METRICS["hit_rate"].label
    captions = " ".join(c.value for c in at.caption)
    assert at.dataframe[0].value[column].iloc[0].startswith("0.667 [")  # the default: each question once
    assert "Unweighted means: each question counts once, whatever its weight." in captions
    at.toggle(key="compare-weighted").set_value(True).run()
    assert at.dataframe[0].value[column].iloc[0].startswith("0.375 [")  # (1 + 0 * 5 + 2) / 8
    captions = " ".join(c.value for c in at.caption)
    assert "Weighted means: each question counts by its weight" in captions and "8 over 3 questions" in captions
