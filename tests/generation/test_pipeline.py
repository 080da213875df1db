"""The whole pipeline: sweep + streamed answers + answer metrics + LLM judge, with reuse of identical prompts."""

import os
import subprocess
import sys
import time

import pytest
from support.judge_stub_server import JudgeStubServer
from support.openai_stub_server import OpenAIStubServer
from support.paths import ROOT
from support.servers import free_port

from eval.generation.generators import GenerationSettings, load_generator
from eval.generation.pipeline import GeneratingAnswerer
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore

SECRET = "sk-test-never-written-anywhere-0123456789"
# threshold 0 keeps all of k = 3, so it retrieves what similarity k=3 retrieves: same prompt, answer reused
GRID = parse_sweep(
    {
        "configs": [
            {"search_type": "similarity", "k": [3, 2]},
            {"search_type": "similarity_score_threshold", "k": 3, "score_threshold": 0.0},
        ]
    }
)


def assert_prompts_carry_the_chunks(run, index, server) -> None:
    """The stub answers "Answer: " + the prompt it got: each answered row's prompt was sent to the endpoint and
    holds the text of every chunk the row retrieved (read from the index), in rank order."""
    sent = {request["body"]["messages"][-1]["content"] for request in server.requests}
    for row in run.rows.itertuples():
        prompt = row.answer.removeprefix("Answer: ")
        assert prompt in sent, (row.question_id, row.config_id)
        got = index.collection.get(ids=list(row.chunk_ids), include=["documents"])
        texts = dict(zip(got["ids"], got["documents"]))
        places = [prompt.find(texts[chunk_id].strip()) for chunk_id in row.chunk_ids]
        assert places and -1 not in places and places == sorted(places), (row.question_id, row.config_id)


def test_sweep_with_answers_reuses_identical_prompts(sample_run, sample_index, sample_dataset, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    questions = sample_dataset.questions[:4]
    streamed = []
    with OpenAIStubServer() as server:
        answerer = GeneratingAnswerer(load_generator(f"openai:stub@{server.base_url}"), GenerationSettings())
        run = sample_run(
            GRID, len(questions), latency_sample=0, answerer=answerer, on_answer=lambda *a: streamed.append(a)
        )
    assert_prompts_carry_the_chunks(run, sample_index, server)
    rows = run.rows.set_index(["question_id", "config_id"])
    assert len(server.requests) == len(questions) * 2  # k=3 and threshold share every prompt
    for question in questions:
        original, reused = rows.loc[(question.id, "similarity-k3")], rows.loc[(question.id, "threshold-k3-t0")]
        assert not original.answer_reused and reused.answer_reused
        assert reused.answer == original.answer and reused.ttft_ms == original.ttft_ms
        assert original.answer.startswith("Answer: ") and question.question in original.answer
        assert original.completion_tokens > 0 and original.total_ms >= original.ttft_ms
        assert 0 <= original.f1 <= 1 and original.contains_answer in (0.0, 1.0)
    assert {(q, c) for q, c, _ in streamed} == {
        (q.id, c) for q in questions for c in ("similarity-k3", "similarity-k2")
    }
    assert run.manifest["generation"]["llm"] == f"openai:stub@{server.base_url}"
    assert all(
        SECRET not in p.read_text(errors="ignore")
        for p in run.folder.rglob("*")
        if p.is_file() and p.suffix in (".json", ".jsonl")
    )


def test_sampling_generates_every_row(sample_run):
    with OpenAIStubServer() as server:
        answerer = GeneratingAnswerer(
            load_generator(f"openai:stub@{server.base_url}"), GenerationSettings(temperature=0.7, top_p=0.9)
        )
        run = sample_run(GRID, 2, latency_sample=0, answerer=answerer)
    assert len(server.requests) == 2 * len(GRID) and not run.rows.answer_reused.any()
    assert server.requests[0]["body"]["temperature"] == 0.7 and server.requests[0]["body"]["top_p"] == 0.9


def cli(home, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "eval", "--home", str(home), *args], capture_output=True, text=True, env=env, cwd=home
    )


@pytest.mark.server
@pytest.mark.slow
def test_scale_out_cli_flow_against_a_chroma_server_and_openai_endpoints(tmp_path):
    """The whole CLI flow with the index on a real `chroma run` server, answers from an OpenAI-compatible
    endpoint and the ragas judge on another one; the API key never lands in a file."""
    port = free_port()
    chroma = ROOT / ".venv" / "bin" / "chroma"
    server = subprocess.Popen(
        [
            str(chroma) if chroma.exists() else "chroma",
            "run",
            "--path",
            str(tmp_path / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    remote = ("--chroma-host", "127.0.0.1", "--chroma-port", str(port))
    try:
        deadline = time.time() + 30
        while cli(tmp_path, *remote, "index", "list").returncode != 0:
            assert time.time() < deadline, "chroma server did not start"
            time.sleep(0.3)
        built = cli(
            tmp_path,
            *remote,
            "index",
            "build",
            "--corpus",
            str(ROOT / "datasets" / "sample"),
            "--name",
            "共享",
            "--embedding",
            "minilm",
            "--chunk-size",
            "400",
        )
        assert built.returncode == 0, built.stderr
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text("configs:\n  - {search_type: similarity, k: [2, 3]}\n", encoding="utf-8")
        with OpenAIStubServer() as llm, JudgeStubServer() as judge:
            ran = cli(
                tmp_path,
                *remote,
                "run",
                "--index",
                "共享",
                "--questions",
                str(ROOT / "datasets" / "sample"),
                "--sweep",
                str(sweep),
                "--limit",
                "3",
                "--latency-sample",
                "1",
                "--generate",
                "--llm",
                f"openai:stub@{llm.base_url}",
                "--judge",
                f"openai:judge@{judge.base_url}",
            )
        assert ran.returncode == 0, ran.stderr
        run_id = ran.stdout.split()[1]
        run = RunStore(tmp_path / "runs").load(run_id)
        assert run.manifest["index"]["name"] == "共享" and run.rows.answer.str.startswith("Answer: ").all()
        assert run.rows.judge_faithfulness.notna().all() and (run.rows.judge_error == "").all()
        exported = cli(tmp_path, *remote, "export", run_id, "--format", "jsonl", "--out", str(tmp_path / "r.jsonl"))
        assert exported.returncode == 0, exported.stderr
        assert all(
            SECRET not in p.read_text(errors="ignore")
            for p in tmp_path.rglob("*")
            if p.is_file() and p.suffix in (".json", ".jsonl", ".csv") and "db" not in p.parts
        )
        assert SECRET not in ran.stdout + ran.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_generation_errors_are_one_line(tmp_path, capsys):
    """The CLI's own entry point, in this process (a process of its own is tested by the scale-out flow)."""
    from eval.cli.main import main

    cases = [
        (("--llm", str(tmp_path / "no-such-model")), "does not exist"),
        (("--llm", f"openai:stub@http://127.0.0.1:{free_port()}/v1"), "127.0.0.1"),
        (("--llm", "openai:stub@nowhere"), "bad model spec"),
    ]
    assert (
        main(
            [
                "--home",
                str(tmp_path),
                "index",
                "build",
                "--corpus",
                str(ROOT / "datasets" / "sample"),
                "--name",
                "s",
                "--embedding",
                "minilm",
                "--chunk-size",
                "400",
            ]
        )
        == 0
    )
    for extra, message in cases:
        capsys.readouterr()
        code = main(
            [
                "--home",
                str(tmp_path),
                "run",
                "--index",
                "s",
                "--questions",
                str(ROOT / "datasets" / "sample"),
                "--limit",
                "1",
                "--latency-sample",
                "0",
                "--generate",
                *extra,
            ]
        )
        stderr = capsys.readouterr().err
        assert code == 2, stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last and "Traceback" not in stderr


def test_parallel_requests_to_an_endpoint(sample_run, sample_index, sample_dataset):
    questions = sample_dataset.questions[:4]
    grid = parse_sweep({"configs": [{"search_type": "similarity", "k": [2]}]})
    with OpenAIStubServer(delay_s=0.5) as server:
        answerer = GeneratingAnswerer(load_generator(f"openai:stub@{server.base_url}"), GenerationSettings())
        started = time.perf_counter()
        run = sample_run(grid, len(questions), latency_sample=0, answerer=answerer, generation_concurrency=4)
        elapsed = time.perf_counter() - started
    assert len(server.requests) == 4 and run.rows.answer.str.startswith("Answer: ").all()
    assert_prompts_carry_the_chunks(run, sample_index, server)  # no answer went to another row
    assert elapsed < 4 * 0.5  # four half-second requests overlapped
    for row in run.rows.itertuples():
        question = next(q for q in questions if q.id == row.question_id)
        assert question.question in row.answer
