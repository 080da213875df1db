"""The TREC export of a run whose document and question ids hold spaces (ASCII and ideographic), Chinese and a
literal '%': trec_eval and ranx split lines on whitespace, so the ids are percent-encoded; ranx scores the
files as the run did, and the lab imports its own export back to the same metrics."""

import json

import pytest
from support.paths import SESSION_EMBEDDING_CACHE
from support.retriever_stub_server import RetrieverStubServer, search_entry

from eval.data.datasets import Dataset
from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.export import export_run
from eval.runs.store import RunStore
from eval.schema import Document, Question
from eval.sweep.engine import SweepOptions, run_sweep

CORPUS = {
    "doc one": "Maximal marginal relevance picks chunks that are relevant to the query and different from each other.",
    "新冠 病毒": "新冠病毒主要通过飞沫和密切接触传播，戴口罩和勤洗手可以降低感染风险。",
    "a%20b": "The k parameter sets how many chunks the retriever returns; a larger k raises recall.",
    "全角　空格": "中文文本按句号、问号和感叹号切分，块的大小和重叠决定了检索的粒度。",
    "plain": "To bake bread, mix flour, water, salt and yeast, let the dough rise, then bake it hot.",
}
QUESTIONS = [
    Question("q 1", "What does maximal marginal relevance pick?", relevant_ids=("doc one",)),
    Question("问题 二", "新冠病毒怎么传播？", relevant_ids=("新冠 病毒",)),
    Question("q%3", "What does the k parameter set?", relevant_ids=("a%20b",)),
    Question("问题　四", "中文文本怎么切分？", relevant_ids=("全角　空格",)),
]
DOC_METRICS = ["hit_rate", "recall", "mrr", "ndcg", "map"]


@pytest.fixture(scope="module")
def odd_ids(tmp_path_factory):
    """A finished run on an index of those ids: a local config, and a service whose chunks map to no document
    (its TREC lines then hold the placeholder of no document)."""
    root = tmp_path_factory.mktemp("odd-ids")
    store = IndexStore(root / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    corpus = [Document(doc_id, text) for doc_id, text in CORPUS.items()]
    store.build(Dataset("odd ids", corpus, QUESTIONS), "odd-ids", "minilm", ChunkingParams(200, 0))
    index = store.open("odd-ids")
    with RetrieverStubServer(index) as stub:
        configs = parse_sweep(
            {
                "configs": [
                    {"search_type": "similarity", "k": 3},
                    {
                        k: v
                        for k, v in search_entry(
                            stub.url, name="nomap", params={"top_k": 2}, map_field="meta.nope"
                        ).items()
                        if k != "score"
                    },
                ]
            }
        )
        runs = RunStore(root / "runs")
        run = runs.load(run_sweep(runs, index, configs, QUESTIONS, "odd", SweepOptions(latency_sample=0)))
    return index, run, root


def rows_of(run, config_id: str):
    return run.rows[run.rows["config_id"] == config_id].set_index("question_id").sort_index()


@pytest.mark.slow  # over 10 s in a full run (subprocesses / the sample's queries)
def test_every_trec_line_has_its_fields_and_ranx_scores_it_as_the_run_did(odd_ids, tmp_path):
    from ranx import Qrels, Run, evaluate

    _, run, _ = odd_ids
    export_run(run, "trec", tmp_path)
    for name in ("similarity-k3.run", "nomap-top_k2.run", "qrels.txt"):
        lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        assert lines and {len(line.split()) for line in lines} == {4 if name == "qrels.txt" else 6}, name
    qrels_text = (tmp_path / "qrels.txt").read_text(encoding="utf-8")
    assert qrels_text == (
        "q%201 0 doc%20one 1\n问题%20二 0 新冠%20病毒 1\nq%253 0 a%2520b 1\n问题%E3%80%80四 0 全角%E3%80%80空格 1\n"
    )
    assert {line.split()[2] for line in (tmp_path / "nomap-top_k2.run").read_text().splitlines()} == {"%00"}
    qrels = Qrels.from_file(str(tmp_path / "qrels.txt"), kind="trec")
    for config_id in ("similarity-k3", "nomap-top_k2"):
        ours = rows_of(run, config_id)[["ndcg", "recall", "mrr"]].mean().to_dict()
        theirs = evaluate(
            qrels,
            Run.from_file(str(tmp_path / f"{config_id}.run"), kind="trec"),
            ["ndcg", "recall", "mrr"],
            make_comparable=True,
        )
        assert theirs == pytest.approx(ours, abs=1e-9), config_id
    assert rows_of(run, "similarity-k3")["ndcg"].mean() > 0.5  # a run worth comparing


def test_the_lab_imports_its_own_exports_back(odd_ids, tmp_path):
    index, run, _ = odd_ids
    export_run(run, "trec", tmp_path / "trec")
    export_run(run, "jsonl", tmp_path / "run.jsonl")
    lines = (tmp_path / "run.jsonl").read_text(encoding="utf-8").splitlines()
    one_config = [line for line in lines if json.loads(line)["config_id"] == "nomap-top_k2"]
    (tmp_path / "nomap.jsonl").write_text("\n".join(one_config) + "\n", encoding="utf-8")
    sweep = {
        "configs": [
            {"search_type": "imported", "name": "trec", "path": str(tmp_path / "trec" / "similarity-k3.run")},
            {"search_type": "imported", "name": "trec-nomap", "path": str(tmp_path / "trec" / "nomap-top_k2.run")},
            {"search_type": "imported", "name": "jsonl-nomap", "path": str(tmp_path / "nomap.jsonl")},
        ]
    }
    runs = RunStore(tmp_path / "runs")
    again = runs.load(run_sweep(runs, index, parse_sweep(sweep), QUESTIONS, "odd", SweepOptions(latency_sample=0)))
    assert again.rows["call_error"].isna().all()
    original, nomap = rows_of(run, "similarity-k3"), rows_of(run, "nomap-top_k2")
    trec = rows_of(again, "trec")
    assert trec["doc_ids"].map(list).tolist() == original["doc_ids"].map(lambda d: list(dict.fromkeys(d))).tolist()
    assert trec[DOC_METRICS].equals(original[DOC_METRICS])
    for config_id in ("trec-nomap", "jsonl-nomap"):
        imported = rows_of(again, config_id)
        assert imported[DOC_METRICS].equals(nomap[DOC_METRICS]), config_id
        assert imported["doc_ids"].map(set).tolist() == [{""}] * len(QUESTIONS)
    assert nomap["scores"].map(list).map(len).eq(2).all()  # NaN scores (no score path), written as null


def test_a_multi_config_jsonl_export_names_the_configs_it_mixes(odd_ids, tmp_path):
    from eval.errors import LabError

    _, run, _ = odd_ids
    export_run(run, "jsonl", tmp_path / "run.jsonl")
    with pytest.raises(LabError) as error:
        parse_sweep({"configs": [{"search_type": "imported", "path": str(tmp_path / "run.jsonl")}]})
    assert str(error.value) == (
        "run.jsonl, line 2: question q 1 has a second line (the first is line 1), of config nomap-top_k2 after "
        "similarity-k3: keep one config's lines"
    )
