"""Inspect's stage view for hybrid and rerank configs: which first-stage retriever (BM25, vector, both) found
each chunk and its rank before and after reranking, checked against LangChain's own retrievers."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest
from support.langchain_reference import langchain_retriever
from support.paths import APP

from eval.errors import LabError
from eval.retrievers import stages
from eval.retrievers.registry import parse_sweep
from eval.retrievers.stages import stages_for_row
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

QUESTIONS = ("q1", "q5")  # English and Chinese


def sweep_spec(model: str) -> dict:
    ensemble = {
        "search_type": "ensemble",
        "weights": [0.5, 0.5],
        "retrievers": [{"search_type": "bm25", "k": 3, "tokenizer": "jieba"}, {"search_type": "similarity", "k": 3}],
    }
    return {"configs": [ensemble, {"search_type": "rerank", "model": model, "top_n": 3, "base": ensemble}]}


@pytest.fixture(scope="module")
def stage_lab(tmp_path_factory, tiny_index_store, tiny_dataset, cross_encoder):
    home = tmp_path_factory.mktemp("stage-home")
    (home / "indexes").symlink_to(tiny_index_store.root)
    configs = parse_sweep(sweep_spec(cross_encoder))
    runs = RunStore(home / "runs")
    run_id = run_sweep(
        runs, tiny_index_store.open("tiny"), configs, tiny_dataset.questions, "tiny", SweepOptions(latency_sample=0)
    )
    return {"home": home, "run": runs.load(run_id), "configs": configs}


def expected_stages(index, configs, question: str, model) -> dict[str, list[tuple]]:
    """Per config: (chunk id, found by, 'BM25 #r, vector #r', rank before, rank after) from LangChain's
    retrievers: the ensemble's two sub-retrievers, the ensemble, and the reranker over it."""
    ensemble, rerank = configs
    firsts = [
        (
            ("BM25" if sub.search_type == "bm25" else "vector"),
            [d.page_content for d in langchain_retriever(index, sub, model).invoke(question)],
        )
        for sub in ensemble.retrievers
    ]
    fused = langchain_retriever(index, ensemble, model).invoke(question)
    reranked = langchain_retriever(index, rerank, model).invoke(question)
    candidates = [d.page_content for d in fused]

    def describe(documents, reranking: bool) -> list[tuple]:
        described = []
        for rank, document in enumerate(documents, start=1):
            found = [
                (kind, texts.index(document.page_content) + 1)
                for kind, texts in firsts
                if document.page_content in texts
            ]
            label = "both" if len({kind for kind, _ in found}) == 2 else found[0][0]
            before = candidates.index(document.page_content) + 1 if reranking else None
            described.append(
                (
                    document.metadata["chunk_id"],
                    label,
                    ", ".join(f"{kind} #{r}" for kind, r in found),
                    before,
                    rank if reranking else None,
                )
            )
        return described

    return {ensemble.config_id: describe(fused, False), rerank.config_id: describe(reranked, True)}


STAGE = re.compile(r"found by \*\*(\w+)\*\* \(([^)]*)\)(?: · reranked #(\d+) → #(\d+))?$")


def shown_stages(at: AppTest) -> list[tuple]:
    """(chunk id, found by, ranks, rank before, rank after) for every chunk card on the page, in order."""
    lines = [m.value for m in at.markdown if re.match(r"\*\*\d+\.\*\* score", m.value)]
    chunk_ids = [c.value.split()[0] for c in at.code]
    assert len(lines) == len(chunk_ids)
    shown = []
    for line, chunk_id in zip(lines, chunk_ids):
        match = STAGE.search(line)
        assert match, line
        label, ranks, before, after = match.groups()
        shown.append((chunk_id, label, ranks, int(before) if before else None, int(after) if after else None))
    return shown


@pytest.mark.slow
def test_inspect_shows_each_chunks_stage_and_rank_before_and_after_reranking(
    stage_lab,
    tiny_index_store,
    tiny_dataset,
    cross_encoder,
    monkeypatch,
):
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder

    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(stage_lab["home"]))
    index = tiny_index_store.open("tiny")
    model = HuggingFaceCrossEncoder(model_name=cross_encoder, model_kwargs={"device": "cpu"})
    questions = {q.id: q for q in tiny_dataset.questions}
    config_ids = [c.config_id for c in stage_lab["configs"]]
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/inspect_question.py").run()
    at.selectbox(key="inspect-run").set_value(stage_lab["run"].run_id).run()
    labels_seen = set()
    for question_id in QUESTIONS:
        at.selectbox(key="inspect-question").set_value(question_id).run()
        at.multiselect(key="inspect-configs").set_value(config_ids).run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        expected = expected_stages(index, stage_lab["configs"], questions[question_id].question, model)
        assert shown_stages(at) == expected[config_ids[0]] + expected[config_ids[1]]
        labels_seen |= {stage[1] for stages in expected.values() for stage in stages}
        reranked = expected[config_ids[1]]
        assert any(before != after for _, _, _, before, after in reranked)  # the reranker did reorder
    assert labels_seen == {"BM25", "vector", "both"}  # every label was checked at least once

    # Stages are cached per (index build, config, question): going back to a question recomputes nothing
    recomputed = []
    original = stages.fast_retrieve_mixed
    monkeypatch.setattr(stages, "fast_retrieve_mixed", lambda *a, **k: recomputed.append(a) or original(*a, **k))
    shown = shown_stages(at)
    at.selectbox(key="inspect-question").set_value(QUESTIONS[0]).run()
    at.selectbox(key="inspect-question").set_value(QUESTIONS[-1]).run()
    assert shown_stages(at) == shown and recomputed == []


def test_stages_are_refused_for_another_build_of_the_index(stage_lab, tiny_index_store, tiny_dataset):
    run = stage_lab["run"]
    params = run.configs[0]
    row = run.rows[(run.rows["config_id"] == params["config_id"]) & (run.rows["question_id"] == "q1")].iloc[0]
    with pytest.raises(LabError, match="was rebuilt after this run"):
        stages_for_row(
            tiny_index_store.open("tiny"),
            "2000-01-01T00:00:00+00:00",
            params,
            tiny_dataset.questions[0],
            list(row["chunk_ids"]),
        )
    with pytest.raises(LabError, match="gave other chunks than the run stored"):
        stages_for_row(
            tiny_index_store.open("tiny"),
            run.info.index.created_at,
            params,
            tiny_dataset.questions[0],
            list(row["chunk_ids"])[::-1] + ["not-a-chunk"],
        )
