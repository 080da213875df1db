"""`calibrate --labels FILE --source SOURCE`: the guaranteed threshold under a person's labels (only the candidates
of documents she judged count; unjudged is not irrelevant), and one line for a missing source, a label file
without a source, a corrected source and a held-out count under 1."""

import json

import pytest
from support.label_source_lab import SOURCE

from eval.cli.main import main


def calibrate(lab, tiny_index_store, *extra: str) -> list[str]:
    return [
        "--home",
        str(lab.home),
        "--indexes",
        str(tiny_index_store.root),
        "calibrate",
        "--index",
        "tiny",
        "--questions",
        str(lab.data / "questions.jsonl"),
        "--precision",
        "0.5",
        *extra,
    ]


def test_calibrate_under_a_human_source_counts_only_her_judged_documents(unlabelled_lab, tiny_index_store, capsys):
    chunks = tiny_index_store.open("tiny").collection.get(include=["metadatas"])["metadatas"]
    # the tiny index has fewer than 20 chunks: every chunk of each document she marked is a candidate, relevant
    expected = sum(m["doc_id"] == doc_id for doc_id in unlabelled_lab.labelled.values() for m in chunks)
    assert 0 < len(unlabelled_lab.labelled) < expected < len(chunks) < 20
    assert main(calibrate(unlabelled_lab, tiny_index_store, "--source", SOURCE, "--json", "--held-out", "all")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["suggestion"]["n_relevant"] == expected and result["suggestion"]["n_irrelevant"] == 0
    assert result["guarantee"]["candidates"] == expected and result["guarantee"]["held_out"] is None
    assert (
        main(
            calibrate(unlabelled_lab, tiny_index_store, "--labels", str(unlabelled_lab.labels_file), "--source", SOURCE)
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        f"{len(unlabelled_lab.labelled)} questions, {expected} relevant and 0 irrelevant candidates under {SOURCE}"
        in out
    )
    assert f"on {len(unlabelled_lab.labelled)} new questions" in out  # the default: as many new as judged


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--source", "human:bob"], "no judgements from source 'human:bob' (sources here: human:ann)"),
        (["--labels", "LABELS"], "--labels needs --source NAME"),
        (["--source", f"llm:m@v1 corrected by {SOURCE}"], "calibrate counts one source's labels"),
        (["--held-out", "0"], "the held-out questions must number at least 1"),
        (["--held-out", "many"], "--held-out takes a number of questions or 'all', got 'many'"),
    ],
)
def test_a_wrong_label_source_is_one_line(unlabelled_lab, tiny_index_store, capsys, extra, message):
    extra = [str(unlabelled_lab.labels_file) if e == "LABELS" else e for e in extra]
    assert main(calibrate(unlabelled_lab, tiny_index_store, *extra)) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_a_missing_label_file_is_one_line(unlabelled_lab, tiny_index_store, capsys, tmp_path):
    missing = tmp_path / "nowhere.labels.jsonl"
    assert main(calibrate(unlabelled_lab, tiny_index_store, "--labels", str(missing), "--source", SOURCE)) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nowhere" in err
