"""A damaged index is one line naming it and what to do, never a traceback: in `index list` (which still lists the
healthy ones), in every command that opens it, and on the dashboard's Indexes page. Each case copies the session's
real tiny index and damages one of its files the way a crash, a full disk or a careless hand does."""

import gzip
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.lab_cli import run_cli, write_questions
from support.paths import APP

from eval.cli.main import main
from eval.index.store import IndexStore
from eval.labels.question_generation import write_index_corpus


def truncate(path: Path, fraction: float = 0.25) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])


def hnsw_file(folder: Path, name: str) -> Path:
    (path,) = (folder / "chroma").glob(f"*/{name}")
    return path


# case -> (how the folder is damaged, what the line must say)
DAMAGES = {
    "sqlite-truncated": (lambda f: truncate(f / "chroma" / "chroma.sqlite3"), "chroma/chroma.sqlite3 is truncated"),
    "sqlite-zeroed": (
        lambda f: (f / "chroma" / "chroma.sqlite3").write_bytes(
            bytes((f / "chroma" / "chroma.sqlite3").stat().st_size)
        ),
        "chroma/chroma.sqlite3 is not a SQLite database",
    ),
    "sqlite-overwritten": (
        lambda f: (f / "chroma" / "chroma.sqlite3").write_text("notes I saved in the wrong place\n"),
        "chroma/chroma.sqlite3 is not a SQLite database",
    ),
    "hnsw-data-truncated": (lambda f: truncate(hnsw_file(f, "data_level0.bin"), 0.05), "data_level0.bin is truncated"),
    # Chroma answered every query with no chunk at all (no error) from this one
    "hnsw-header-truncated": (lambda f: truncate(hnsw_file(f, "header.bin")), "header.bin is truncated"),
    "chroma-missing": (lambda f: shutil.rmtree(f / "chroma"), "its chroma folder is missing"),
    "manifest-not-json": (
        lambda f: (f / "manifest.json").write_text(f'{{"name": "{f.name}", '),
        "manifest.json is not valid JSON",
    ),
    "manifest-lacks-fields": (
        lambda f: (f / "manifest.json").write_text(json.dumps({"name": f.name})),
        "manifest.json lacks slug, dataset",
    ),
    "bm25-truncated": (lambda f: truncate(f / "bm25.json.gz", 0.5), "bm25.json.gz has"),
}


def copy_index(source: Path, root: Path, name: str) -> Path:
    """A copy of a local index under another name (its manifest renamed; the Chroma collection is always `chunks`)."""
    shutil.copytree(source, root / name)
    manifest = json.loads((root / name / "manifest.json").read_text(encoding="utf-8"))
    (root / name / "manifest.json").write_text(json.dumps({**manifest, "name": name, "slug": name}), encoding="utf-8")
    return root / name


@pytest.fixture(scope="module")
def broken_home(tmp_path_factory, tiny_index_store):
    """A data folder with one healthy index, `good`, and one index per damage, named after it."""
    home = tmp_path_factory.mktemp("broken-home")
    source = tiny_index_store.root / "tiny"
    copy_index(source, home / "indexes", "good")
    for case, (damage, _) in DAMAGES.items():
        damage(copy_index(source, home / "indexes", case))
    return home


def one_error_line(captured) -> str:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_index_list_lists_the_healthy_index_and_marks_each_damaged_one(broken_home, capsys):
    assert main(["--home", str(broken_home), "index", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("good\t8 docs\t11 chunks\tminilm")
    marked = {line.split("\t")[0]: line.split("\t", 2)[1:] for line in lines[1:]}
    assert sorted(marked) == sorted(DAMAGES)
    for case, (_, problem) in DAMAGES.items():
        mark, message = marked[case]
        assert mark == "DAMAGED"
        assert message.startswith(f"index '{case}' is damaged (") and problem in message
        assert f"--name {case} --replace" in message


@pytest.mark.parametrize("case", list(DAMAGES))
def test_opening_a_damaged_index_is_one_line_naming_it_and_what_to_do(broken_home, case, capsys):
    code = main(["--home", str(broken_home), "retrieve", "--index", case, "--question", "What does k set?"])
    line = one_error_line(capsys.readouterr())
    assert code == 2
    assert line.startswith(f"error: index '{case}' is damaged (") and DAMAGES[case][1] in line
    assert line.endswith(f"--replace`, or delete it (`python -m eval index delete {case}`)")


def test_damage_inside_the_sqlite_file_is_found_when_chroma_opens_it(tmp_path, tiny_index_store, capsys):
    """A file of the right header and size whose pages were zeroed passes the file checks: Chroma's own error
    when it opens the index becomes the line."""
    sqlite = copy_index(tiny_index_store.root / "tiny", tmp_path / "indexes", "pages") / "chroma" / "chroma.sqlite3"
    data = sqlite.read_bytes()
    sqlite.write_bytes(data[:100] + bytes(len(data) - 100))
    code = main(["--home", str(tmp_path), "retrieve", "--index", "pages", "--question", "What does k set?"])
    line = one_error_line(capsys.readouterr())
    assert code == 2
    assert line.startswith("error: index 'pages' is damaged (Chroma cannot read it: ") and "malformed" in line


def test_the_healthy_copy_still_answers(broken_home, capsys):
    assert main(["--home", str(broken_home), "retrieve", "--index", "good", "--question", "What does k set?"]) == 0
    assert capsys.readouterr().out.startswith("similarity-k4: 4 chunks")


def test_an_old_index_without_the_recorded_size_says_so_when_its_bm25_side_is_read(
    tmp_path, tiny_index_store, tiny_dataset, capsys
):
    folder = copy_index(tiny_index_store.root / "tiny", tmp_path / "indexes", "old")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    del manifest["bm25"]["bytes"]  # as written before the size was recorded
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    truncate(folder / "bm25.json.gz", 0.5)
    with pytest.raises(EOFError):  # the damage the size would have shown
        gzip.decompress((folder / "bm25.json.gz").read_bytes())
    (tmp_path / "sweep.yaml").write_text("configs:\n  - {search_type: bm25, k: 3}\n", encoding="utf-8")
    questions = write_questions(tiny_dataset, tmp_path / "questions.jsonl")
    store = IndexStore(tmp_path / "indexes")
    assert run_cli(tmp_path, store, "old", questions, tmp_path / "sweep.yaml") == 2
    line = one_error_line(capsys.readouterr())
    assert line.startswith("error: index 'old' is damaged (bm25.json.gz cannot be read: ")


def test_rebuild_with_replace_repairs_and_delete_removes_a_damaged_index(tmp_path, tiny_index_store, capsys):
    root = tmp_path / "indexes"
    DAMAGES["sqlite-zeroed"][0](copy_index(tiny_index_store.root / "tiny", root, "tiny"))
    DAMAGES["manifest-not-json"][0](copy_index(tiny_index_store.root / "tiny", root, "other"))
    write_index_corpus(tmp_path, tiny_index_store.open("tiny"))
    build = ["--home", str(tmp_path), "index", "build", "--corpus", str(tmp_path / "corpus.jsonl"), "--name", "tiny"]
    build += ["--embedding", "minilm", "--chunk-size", "120", "--chunk-overlap", "20"]
    assert main(build) == 2  # without --replace the damaged index stays as it is
    assert "error: index 'tiny' is damaged (chroma/chroma.sqlite3 is not a SQLite" in one_error_line(
        capsys.readouterr()
    )
    assert main([*build, "--replace"]) == 0
    assert main(["--home", str(tmp_path), "index", "delete", "other"]) == 0
    capsys.readouterr()
    assert main(["--home", str(tmp_path), "index", "list"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("tiny\t8 docs\t11 chunks\tminilm")
    assert sorted(c.chunk_id for c in IndexStore(root).open("tiny").chunks()) == sorted(
        c.chunk_id for c in tiny_index_store.open("tiny").chunks()
    )


def test_the_indexes_page_shows_each_damaged_index_in_one_line_and_lists_the_healthy_one(broken_home, monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(broken_home))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/indexes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe[0].value["name"].tolist() == ["good"]
    errors = sorted(e.value for e in at.error)
    assert len(errors) == len(DAMAGES)
    for line, case in zip(errors, sorted(DAMAGES)):
        assert line.startswith(f"index '{case}' is damaged (") and DAMAGES[case][1] in line and "\n" not in line
        assert f"--name {case} --replace" in line
    assert at.selectbox(key="browse-index").options == ["good"]
    assert at.selectbox(key="delete-index").options == ["good", *sorted(DAMAGES)]
