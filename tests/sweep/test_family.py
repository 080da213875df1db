import dataclasses
import json
import re
import threading

import pytest
from support.dashboard_lab import page_opener
from support.tiny_corpus import write_dataset

from eval.analysis.family import INDEX_COLUMNS, describe_best, family_leaderboard, family_rows
from eval.data.datasets import Dataset
from eval.data.labels import labels_from_questions
from eval.errors import LabError
from eval.index.chunking import ChunkingParams, chunk_corpus, sentence_pieces
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.labels.rescore import rescore
from eval.retrievers.vector import RetrieverConfig
from eval.runs.store import RunStore
from eval.schema import AnswerSpan, Document, Question
from eval.sweep.engine import SweepCancelled, SweepOptions
from eval.sweep.family import build_family, family_grid, run_family_sweep

TIMING = ["ttft_ms", "total_ms", "tokens_per_s"]  # measured per run; every other column must match
CONFIGS = [
    RetrieverConfig.create("similarity", k=1),
    RetrieverConfig.create("similarity", k=3),
    RetrieverConfig.create("mmr", k=2, fetch_k=6, lambda_mult=0.5),
]


def test_a_grid_with_overlap_not_below_chunk_size_is_rejected_before_building():
    with pytest.raises(LabError, match=r"variant grid: chunk_size 200 x chunk_overlap 200: chunk overlap must be"):
        family_grid([500, 200], [50, 200], ["recursive"], ["minilm"])
    with pytest.raises(LabError, match="variant grid: unknown splitter 'markdown'"):
        family_grid([500], [50], ["markdown"], ["minilm"])
    grid = family_grid([300, 500], [0, 50], ["recursive", "sentence"], ["minilm", "openai:m@http://h:1/v1"])
    assert len(grid) == 16 and len({v.index_name("fam") for v in grid}) == 16
    assert all("/" not in v.index_name("fam") for v in grid)


def test_the_sentence_splitter_keeps_whole_sentences_with_exact_offsets():
    text = (
        "Chroma stores vectors. MMR trades relevance for diversity! Is k the number of chunks? Yes. "
        "中文第一句讲召回率。中文第二句讲延迟！第三句？\n\nA new paragraph starts here."
    )
    params = ChunkingParams(60, 25, splitter="sentence")
    pieces = sentence_pieces(text, params)
    sentence_ends = {m.end() for m in re.finditer(r"[.!?。！？]", text)}
    assert len(pieces) > 1
    for start, piece in pieces:
        assert text[start : start + len(piece)] == piece and 0 < len(piece) <= 60
        assert start + len(piece) in sentence_ends  # no chunk ends inside a sentence
    assert any(a + len(p) > b for (a, p), (b, _) in zip(pieces, pieces[1:]))  # some overlap
    recursive = chunk_corpus([Document("d", text)], ChunkingParams(60, 25))
    assert [c.text for c in recursive] != [p for _, p in pieces]


@pytest.fixture(scope="module")
def spanned_dataset(tiny_dataset):
    """The tiny corpus with questions whose gold labels are answer spans."""
    texts = {d.id: d.text for d in tiny_dataset.corpus}
    questions = [
        Question(
            q.id,
            q.question,
            q.answers,
            q.relevant_ids,
            tuple(
                AnswerSpan(d, texts[d].index(q.answers[0]), texts[d].index(q.answers[0]) + len(q.answers[0]))
                for d in q.relevant_ids
            ),
        )
        for q in tiny_dataset.questions
    ]
    return Dataset("tiny-spans", tiny_dataset.corpus, questions)


@pytest.fixture(scope="module")
def family(tmp_path_factory, spanned_dataset):
    root = tmp_path_factory.mktemp("family")
    store = IndexStore(root / "indexes", embedding_cache=EmbeddingCache(root / "cache"))
    variants = family_grid([80, 160], [0, 20], ["recursive", "sentence"], ["minilm"])[:3]
    seen = []
    manifests = build_family(store, spanned_dataset, "tiny", variants, progress=lambda *a: seen.append(a))
    return store, variants, manifests, seen


def test_a_family_is_built_as_one_job_of_normal_indexes(family, spanned_dataset):
    store, variants, manifests, seen = family
    total = sum(m.chunks for m in manifests)
    assert {s for s, _, _ in seen} == {"embedding"} and {t for _, _, t in seen} == {total}
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == total
    assert [m.name for m in store.list()] == sorted(v.index_name("tiny") for v in variants)
    for variant, manifest in zip(variants, manifests):
        assert (manifest.chunk_size, manifest.chunk_overlap, manifest.splitter) == (
            variant.chunk_size,
            variant.chunk_overlap,
            variant.splitter,
        )
        assert manifest.chunks == len(chunk_corpus(spanned_dataset.corpus, variant.chunking))
        assert manifest.corpus_fingerprint == spanned_dataset.corpus_fingerprint()
    # variants share chunk texts (the overlap does not matter for chunks shorter than a chunk): cache hits
    assert sum(m.embedding_cache["hits"] for m in manifests[1:]) > 0
    # building the family again reuses every variant
    assert build_family(store, spanned_dataset, "tiny", variants) == manifests


def test_a_family_sweep_scores_every_variant_against_the_same_span_labels(family, spanned_dataset, tmp_path):
    store, variants, manifests, _ = family
    indexes = [store.open(m.name) for m in manifests]
    runs_store = RunStore(tmp_path / "runs")
    progress = []
    run_ids = run_family_sweep(
        runs_store,
        indexes,
        CONFIGS,
        spanned_dataset.questions,
        "tiny",
        SweepOptions(latency_sample=0, progress=lambda *a: progress.append(a)),
    )
    runs = [runs_store.load(run_id) for run_id in run_ids]
    assert len({r.manifest["family"]["id"] for r in runs}) == 1
    assert [r.manifest["index"]["name"] for r in runs] == [m.name for m in manifests]
    counts = [(d, t) for s, d, t in progress if s == "questions"]
    assert counts[-1] == (len(manifests) * len(spanned_dataset.questions),) * 2

    labels = labels_from_questions(spanned_dataset.questions, spanned_dataset.corpus)
    rows = family_rows(runs, labels)
    assert len(rows) == len(manifests) * len(CONFIGS) * len(spanned_dataset.questions)
    for run, manifest in zip(runs, manifests):
        mine = rows[rows["index"] == manifest.name].reset_index(drop=True)
        assert set(mine["chunk_size"]) == {manifest.chunk_size} and set(mine["splitter"]) == {manifest.splitter}
        expected = rescore(run, labels)
        assert mine["passage_ndcg"].equals(expected["passage_ndcg"])
        chunk_text = {c.chunk_id: c.text for c in store.open(manifest.name).chunks()}
        assert list(mine["context_chars"]) == [sum(len(chunk_text[c]) for c in ids) for ids in mine["chunk_ids"]]
    # bigger chunks retrieve more characters at the same k
    by_size = rows[rows["config_id"] == "similarity-k3"].groupby("chunk_size")["context_chars"].mean()
    assert by_size[160] > by_size[80]

    table = family_leaderboard(rows, "passage_ndcg")
    assert len(table) == len(manifests) * len(CONFIGS) and set(INDEX_COLUMNS) <= set(table.columns)
    means = rows.groupby(["index", "config_id"])["passage_ndcg"].mean()
    best = describe_best(table, "passage_ndcg")
    assert best["passage_ndcg"] == pytest.approx(means.max())
    assert means[best["index"], best["config_id"]] == pytest.approx(means.max())
    assert best["low"] <= best["passage_ndcg"] <= best["high"]


def test_a_cancelled_family_sweep_resumes_to_the_uninterrupted_rows(family, spanned_dataset, tmp_path):
    store, _, manifests, _ = family
    indexes = [store.open(m.name) for m in manifests]
    questions = spanned_dataset.questions
    runs_store = RunStore(tmp_path / "runs")
    cancel, started = threading.Event(), []

    def progress(stage, done, total):
        if stage == "questions" and done >= len(questions) + 2:  # one block into the second index
            cancel.set()

    options = SweepOptions(latency_sample=0, block_size=2, progress=progress, cancel=cancel, on_start=started.append)
    with pytest.raises(SweepCancelled):
        run_family_sweep(runs_store, indexes, CONFIGS, questions, "tiny", options)
    assert [runs_store.manifest(r)["status"] for r in started] == ["complete", "cancelled"]
    family_id = runs_store.manifest(started[0])["family"]["id"]

    with pytest.raises(LabError, match="resume it with the same --index list in the same order"):
        run_family_sweep(
            runs_store, indexes[::-1], CONFIGS, questions, "tiny", SweepOptions(block_size=2), resume=family_id
        )
    with pytest.raises(LabError, match="no family sweep 'nope'"):
        run_family_sweep(runs_store, indexes, CONFIGS, questions, "tiny", resume="nope")
    resumed_starts = []
    resumed = run_family_sweep(
        runs_store,
        indexes,
        CONFIGS,
        questions,
        "tiny",
        SweepOptions(latency_sample=0, block_size=2, on_start=resumed_starts.append),
        resume=started[1],
    )  # a job resumes by the run it reached: that finds the family
    assert resumed[:2] == started and resumed_starts == resumed[1:]  # the complete run is kept as it is
    straight = run_family_sweep(
        runs_store, indexes, CONFIGS, questions, "tiny", SweepOptions(latency_sample=0, block_size=2)
    )
    for mine, theirs in zip(resumed, straight):
        a, b = (runs_store.load(r) for r in (mine, theirs))
        assert a.manifest["family"]["id"] == family_id and a.manifest["status"] == "complete"
        assert a.manifest["family"]["variant"] == b.manifest["family"]["variant"]
        assert (
            a.rows.drop(columns=TIMING, errors="ignore").astype(str).values.tolist()
            == b.rows.drop(columns=TIMING, errors="ignore").astype(str).values.tolist()
        )


def test_indexes_of_different_corpora_cannot_be_swept_together(family, tiny_index_store, tmp_path):
    store, _, manifests, _ = family
    other = tiny_index_store.open("tiny")  # the tiny corpus, but its own questions: fingerprints match
    assert other.manifest.corpus_fingerprint == manifests[0].corpus_fingerprint
    changed = Dataset("changed", [Document("only", "A different corpus of one document.")], [])
    store.build(changed, "changed", "minilm", ChunkingParams(80, 0))
    with pytest.raises(LabError, match="index 'changed' .* another corpus than 'tiny--minilm"):
        run_family_sweep(
            RunStore(tmp_path),
            [store.open(manifests[0].name), store.open("changed")],
            CONFIGS,
            [Question("q", "what?")],
        )
    assert not (tmp_path / "runs").exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_cli_builds_a_family_and_names_the_best_pair(tmp_path, spanned_dataset, capsys):
    from eval.cli.main import main

    write_dataset(tmp_path, spanned_dataset)
    home = ["--home", str(tmp_path / "home")]

    def index_family(overlap: str) -> int:
        """`index family` of the data folder with chunk sizes 60 and 100 and the given overlap: its exit code."""
        grid = ["--chunk-size", "60", "100", "--chunk-overlap", overlap, "--embedding", "minilm"]
        return main([*home, "index", "family", "--corpus", str(tmp_path), "--name", "fam", *grid])

    def run_family(names: list[str], *resume: str) -> int:
        """`run-family` of the named indexes on the data folder's questions: its exit code."""
        questions = str(tmp_path / "questions.jsonl")
        return main([*home, "run-family", "--index", *names, "--questions", questions, "--top", "3", *resume])

    assert index_family("100") == 2
    assert "variant grid: chunk_size 60 x chunk_overlap 100" in capsys.readouterr().err
    assert index_family("0") == 0
    built = capsys.readouterr().out.splitlines()
    assert len(built) == 2 and all("embedding cache" in line for line in built)
    names = [line.split("'")[1] for line in built]
    assert run_family(names) == 0
    out, err = capsys.readouterr()
    best = out.strip().splitlines()[-1]
    assert best.startswith("best: fam--minilm-recursive-") and "passage_ndcg" in best and "characters retrieved" in best
    family_id = re.search(r"add --resume (\w+) to the same command", err).group(1)
    runs = sorted((tmp_path / "home" / "runs").iterdir())
    assert run_family(names, "--resume", family_id) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == best  # nothing left to run: the same runs
    assert sorted((tmp_path / "home" / "runs").iterdir()) == runs


@pytest.mark.slow
def test_the_index_variants_page_names_the_best_pair_and_draws_the_dimensions(
    family, spanned_dataset, tmp_path, monkeypatch
):
    store, _, manifests, _ = family
    at = page_opener(tmp_path, monkeypatch)("dashboard/pages/families.py")
    assert "No family sweeps yet" in at.info[0].value

    questions = write_dataset(tmp_path / "data", spanned_dataset) / "questions.jsonl"
    runs = RunStore(tmp_path / "runs")
    run_ids = run_family_sweep(
        runs,
        [store.open(m.name) for m in manifests],
        CONFIGS,
        spanned_dataset.questions,
        str(questions),
        SweepOptions(latency_sample=0),
    )
    expected = describe_best(
        family_leaderboard(
            family_rows(
                [runs.load(r) for r in run_ids],
                labels_from_questions(spanned_dataset.questions, spanned_dataset.corpus),
            ),
            "passage_ndcg",
        ),
        "passage_ndcg",
    )
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Compare index variants"
    assert f"**{expected['index']}** with **{expected['config_id']}**" in at.success[0].value
    assert f"{expected['passage_ndcg']:.3f}" in at.success[0].value
    assert len(at.dataframe[0].value) == len(manifests) * len(CONFIGS)
    at.selectbox(key="family-metric").set_value("hit_rate").run()
    assert not at.exception and set(at.dataframe[0].value.columns) >= {"hit_rate_mean", "context_chars_mean"}
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    heatmap = json.loads(charts[0].proto.spec)["data"][0]
    assert heatmap["type"] == "heatmap" and sorted(heatmap["y"]) == sorted({f"{m.chunk_size:g}" for m in manifests})


def test_every_sweep_row_carries_its_context_length(sample_run):
    from eval.metrics import METRICS
    from eval.runs.summary import quality_metrics

    run = sample_run({"configs": [{"search_type": "similarity", "k": [2, 4]}]}, questions=5)
    texts = run.chunk_texts
    expected = [sum(len(texts[c]) for c in ids) for ids in run.rows["chunk_ids"]]
    assert list(run.rows["context_chars"]) == expected and min(expected) > 0
    assert "context_chars" in quality_metrics(run.rows) and not METRICS["context_chars"].higher_is_better
    # a run written before the sweep kept it gets the same numbers from family_rows
    older = dataclasses.replace(run, rows=run.rows.drop(columns="context_chars"))
    assert list(family_rows([older])["context_chars"]) == expected
