import os
import shutil
import time
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["RAGAS_DO_NOT_TRACK"] = "true"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

from support.paths import (  # noqa: E402
    NUMBA_CACHE,
    SESSION_EMBEDDING_CACHE,
    SHARED_DATA_TESTS,
    SHARED_DATASETS,
    onnx_exports_folder,
)

os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))  # before anything imports numba; subprocesses too

from support.lab_llm_responder import respond  # noqa: E402
from support.openai_stub_server import OpenAIStubServer  # noqa: E402
from support.tiny_corpus import TINY_TEXTS  # noqa: E402
from support.tiny_cross_encoder import build_cross_encoder  # noqa: E402

from eval import SAMPLE_DIR  # noqa: E402
from eval.data.datasets import Dataset  # noqa: E402
from eval.schema import Document, Question  # noqa: E402

# fixtures shared by test modules of several folders
pytest_plugins = ["support.dashboard_lab", "support.jobs_lab", "support.label_source_lab"]


# The longest test files (about two minutes each on this machine), run first: two workers take whole files in
# collection order, so a long file collected last would run alone at the end of the suite.
LONGEST_FIRST = (
    "tests/e2e/test_jobs_browser.py",
    "tests/sweep/test_sweep.py",
    "tests/cli/test_cli.py",
    "tests/e2e/test_screens.py",
    "tests/generation/test_generation.py",
    "tests/e2e/test_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order


SHARED_DATA_OUTCOMES: dict[str, str] = {}  # test id -> outcome, gathered where the session reports (xdist too)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Mark the reports of a test that asked for ../shared/datasets: the mark travels from an xdist worker."""
    report = yield
    if item.nodeid in SHARED_DATA_TESTS:
        report.user_properties.append(("shared_data", True))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if ("shared_data", True) in report.user_properties and (report.when == "call" or not report.passed):
        SHARED_DATA_OUTCOMES[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which tests on the real data in ../shared/datasets ran and which skipped (the folder is absent)."""
    if not SHARED_DATA_OUTCOMES:
        return
    ran = sorted(t for t, outcome in SHARED_DATA_OUTCOMES.items() if outcome != "skipped")
    skipped = sorted(t for t, outcome in SHARED_DATA_OUTCOMES.items() if outcome == "skipped")
    terminalreporter.write_sep("-", f"real data in {SHARED_DATASETS}: {len(ran)} tests ran, {len(skipped)} skipped")
    for test in ran:
        terminalreporter.write_line(f"ran ({SHARED_DATA_OUTCOMES[test]}): {test}")
    for test in skipped:
        terminalreporter.write_line(f"skipped: {test}")


@pytest.fixture(scope="session", autouse=True)
def onnx_exports():
    """One folder of ONNX exports for every session, subprocesses included (e5-small's export takes a minute or
    two): $RETRIEVER_LAB_ONNX_MODELS. Staging folders an interrupted export left over an hour ago are removed
    (an export takes minutes; a younger one may be another session's, at work)."""
    from eval.settings import ONNX_MODELS_ENV

    folder = onnx_exports_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for staging in folder.glob(".*"):
        if time.time() - staging.stat().st_mtime > 3600:
            shutil.rmtree(staging, ignore_errors=True)
    os.environ[ONNX_MODELS_ENV] = str(folder)
    yield folder
    del os.environ[ONNX_MODELS_ENV]


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    corpus = [
        Document(
            id=doc_id,
            text=text,
            title=doc_id,
            source="tiny",
            metadata={"lang": "zh" if doc_id.startswith("zh") else "en", "topic": doc_id},
        )
        for doc_id, text in TINY_TEXTS.items()
    ]
    questions = [
        Question("q1", "What does lambda_mult trade off in MMR?", ("relevance against diversity",), ("mmr",)),
        Question("q2", "How many chunks does k return?", ("between 3 and 10",), ("k",)),
        Question("q3", "Which distance space keeps scores between zero and one?", ("cosine",), ("chroma",)),
        Question("q4", "How many points did the Panthers defense give up?", ("308",), ("football",)),
        Question("q5", "复用什么可以避免重复计算？", ("KV 缓存",), ("zh-kv",)),
    ]
    return Dataset(name="tiny", corpus=corpus, questions=questions)


@pytest.fixture(scope="session")
def tiny_index_store(tmp_path_factory, tiny_dataset):
    """A real Chroma index of the tiny corpus, built once per session with MiniLM."""
    from eval.index.chunking import ChunkingParams
    from eval.index.embedding_cache import EmbeddingCache
    from eval.index.store import IndexStore

    store = IndexStore(tmp_path_factory.mktemp("indexes"), embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    store.build(tiny_dataset, "tiny", embedding_model="minilm", chunking=ChunkingParams(120, 20))
    return store


@pytest.fixture(scope="session")
def sample_dataset():
    from eval.data.datasets import load_dataset

    return load_dataset(SAMPLE_DIR)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, sample_dataset):
    """The bundled sample in a real Chroma index with e5-small (bit-identical batched and single queries)."""
    from eval.index.chunking import ChunkingParams
    from eval.index.embedding_cache import EmbeddingCache
    from eval.index.store import IndexStore

    store = IndexStore(
        tmp_path_factory.mktemp("sample-indexes"), embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE)
    )
    store.build(sample_dataset, "sample", embedding_model="e5-small", chunking=ChunkingParams(400, 40))
    return store.open("sample")


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, sample_index, sample_dataset):
    """A finished run on the sample index: `sample_run(sweep, questions=10, **options) -> Run`.

    `sweep` is a sweep spec (dict) or a list of `RetrieverConfig`; `questions` the first n sample questions or a
    slice of them; `options` go to `SweepOptions`. Calls with plain-valued options (numbers, strings, booleans)
    share one run per session: treat it as read-only. Options holding objects (an answerer, callbacks) make a
    fresh run on every call. Each run has a RunStore folder of its own (`run.folder.parent`).
    """
    from eval.retrievers.registry import parse_sweep
    from eval.runs.store import RunStore
    from eval.sweep.engine import SweepOptions, run_sweep

    made = {}

    def make(sweep, questions: int | slice = 10, **options):
        configs = parse_sweep(sweep) if isinstance(sweep, dict) else list(sweep)
        chosen = sample_dataset.questions[questions if isinstance(questions, slice) else slice(questions)]
        plain = all(isinstance(v, (bool, int, float, str, type(None))) for v in options.values())
        key = (repr(configs), repr(questions), repr(sorted(options.items())))
        if not plain or key not in made:
            store = RunStore(tmp_path_factory.mktemp("run"))
            run = store.load(run_sweep(store, sample_index, configs, chosen, "sample", SweepOptions(**options)))
            if not plain:
                return run
            made[key] = run
        return made[key]

    return make


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory) -> Path:
    """A lab home for the bundled SmolLM2: its first load converts the GGUF (slow) into `models/smollm2` here, and
    every later test that loads it from this home reads that copy."""
    return tmp_path_factory.mktemp("smollm2-home")


@pytest.fixture(scope="session")
def lab_llm():
    """An OpenAI-compatible endpoint whose replies follow support/lab_llm_responder.py's rules: question writing
    and judging that a test can predict."""
    with OpenAIStubServer(responder=respond) as server:
        yield server


@pytest.fixture(scope="session")
def cross_encoder(tmp_path_factory) -> str:
    """A small CrossEncoder folder (support/tiny_cross_encoder.py), built once per session: its path."""
    return str(build_cross_encoder(tmp_path_factory.mktemp("cross-encoder") / "tiny-ce"))
