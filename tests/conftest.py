import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["RAGAS_DO_NOT_TRACK"] = "true"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

from eval import SAMPLE_DIR  # noqa: E402
from eval.data.datasets import Dataset  # noqa: E402
from eval.schema import Document, Question  # noqa: E402

SHARED_DATA_TESTS: dict[str, str] = {}  # test id -> outcome, for the summary at the end of the session


def shared_dataset(*parts: str) -> Path:
    """A path under ../shared/datasets, or a skip (with the reason) where that folder is absent."""
    SHARED_DATA_TESTS.setdefault(os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0], "not reported")
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real evaluation data lives beside the checkout)")
    return path


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in SHARED_DATA_TESTS and (report.when == "call" or not report.passed):
        SHARED_DATA_TESTS[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which tests on the real data in ../shared/datasets ran and which skipped (the folder is absent)."""
    if not SHARED_DATA_TESTS:
        return
    ran = sorted(t for t, outcome in SHARED_DATA_TESTS.items() if outcome != "skipped")
    skipped = sorted(t for t, outcome in SHARED_DATA_TESTS.items() if outcome == "skipped")
    terminalreporter.write_sep("-", f"real data in {SHARED_DATASETS}: {len(ran)} tests ran, {len(skipped)} skipped")
    for test in ran:
        terminalreporter.write_line(f"ran ({SHARED_DATA_TESTS[test]}): {test}")
    for test in skipped:
        terminalreporter.write_line(f"skipped: {test}")


# The session's shared indexes take their chunk vectors from an embedding cache that outlives the session
# (keyed by the encoder's identity, see eval/embedding_cache.py): every build is still a real Chroma build,
# but the sample's e5-small vectors are encoded once per checkout, not once per session.
SESSION_EMBEDDING_CACHE = ROOT / ".retriever_lab" / "test-embedding-cache"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TINY_TEXTS = {
    "mmr": "Maximal marginal relevance picks chunks that are relevant to the query and different from each "
    "other.\n\nThe lambda_mult parameter trades relevance against diversity: 1 means pure relevance.",
    "k": "The k parameter sets how many chunks the retriever returns. Larger k raises recall and costs "
    "prompt tokens.\n\nA typical k is between 3 and 10.",
    "threshold": "A score threshold drops chunks whose relevance score is below the threshold, so the "
    "number of returned chunks varies from question to question.",
    "chroma": "Chroma stores vectors in a persistent folder. Use the cosine space so that relevance scores "
    "stay between zero and one.",
    "zh-chunk": "中文文本按句号、问号和感叹号切分。块的大小和重叠决定了检索的粒度。",
    "zh-kv": "ChatGLM 的 stream_chat 返回 past_key_values，复用 KV 缓存可以避免重复计算。",
    "cooking": "To bake bread, mix flour, water, salt and yeast, let the dough rise, then bake it hot.",
    "football": "The Panthers defense gave up 308 points and led the league in interceptions.",
}


@pytest.fixture(scope="session", autouse=True)
def onnx_exports():
    """One folder of ONNX exports for the whole session, subprocesses included (e5-small's export takes a minute
    or two): $RETRIEVER_LAB_ONNX_MODELS."""
    from eval.settings import ONNX_MODELS_ENV

    folder = Path(tempfile.mkdtemp(prefix="lab-onnx-models-"))
    os.environ[ONNX_MODELS_ENV] = str(folder)
    yield folder
    del os.environ[ONNX_MODELS_ENV]
    shutil.rmtree(folder, ignore_errors=True)


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
    """An OpenAI-compatible endpoint whose replies follow tests/lab_llm_responder.py's rules: question writing
    and judging that a test can predict."""
    from lab_llm_responder import respond
    from openai_stub_server import OpenAIStubServer

    with OpenAIStubServer(responder=respond) as server:
        yield server


@contextlib.contextmanager
def streamlit_server(home, *flags: str):
    """`streamlit run streamlit_app.py` on a free port (plus `flags`); yields (url, port) once healthy."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RETRIEVER_LAB_HOME": str(home), "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "streamlit did not start"
                time.sleep(0.3)
        yield url, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not leave it running
            server.kill()
            server.wait()
