import json

import pytest
from support.paths import shared_dataset

from eval.data.datasets import load_beir, load_corpus, load_dataset, load_documents, load_questions, load_squad
from eval.errors import DatasetError
from eval.io import decode_bytes
from eval.schema import AnswerSpan


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def native(tmp_path, corpus, questions):
    write_jsonl(tmp_path / "corpus.jsonl", corpus)
    write_jsonl(tmp_path / "questions.jsonl", questions)
    return tmp_path


DOCS = [
    {"id": "d1", "text": "Alpha text", "title": "A", "metadata": {"lang": "en"}},
    {"id": "d2", "text": "第二篇文档", "source": "zh.txt"},
]


def test_native_folder_loads_documents_questions_and_merges_answers(tmp_path):
    folder = native(
        tmp_path,
        DOCS,
        [{"id": "q1", "question": "Alpha?", "answer": "Alpha", "answers": ["Alpha", "A"], "relevant_ids": ["d1"]}],
    )
    dataset = load_dataset(folder)
    assert [d.id for d in dataset.corpus] == ["d1", "d2"]
    assert dataset.corpus[0].metadata == {"lang": "en"}
    assert dataset.questions[0].answers == ("Alpha", "A")
    assert dataset.questions[0].relevant_ids == ("d1",)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "d3", "text": "x"', "corpus.jsonl, line 3: invalid JSON"),
        ('{"id": "d3"}', "corpus.jsonl, line 3, field 'text': missing"),
        ('{"id": "d3", "text": "   "}', "corpus.jsonl, line 3, field 'text': empty text"),
        ('{"id": "d3", "text": 5}', "corpus.jsonl, line 3, field 'text': must be a string, got int"),
        ('{"id": "d1", "text": "again"}', "corpus.jsonl, line 3, field 'id': duplicate id 'd1' (first seen on line 1)"),
        ('{"id": null, "text": "x"}', "corpus.jsonl, line 3, field 'id': missing or not a string"),
        ("[1, 2]", "corpus.jsonl, line 3: expected a JSON object"),
    ],
)
def test_corpus_errors_name_file_line_and_field(tmp_path, line, message):
    path = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        load_corpus(path)
    assert str(error.value).startswith(message)


def test_questions_naming_absent_documents_are_rejected(tmp_path):
    corpus = load_corpus(write_jsonl(tmp_path / "corpus.jsonl", DOCS))
    path = write_jsonl(
        tmp_path / "questions.jsonl",
        [
            {"id": "q1", "question": "ok?", "relevant_ids": ["d1"]},
            {"id": "q2", "question": "bad?", "relevant_ids": ["d1", "nope"]},
        ],
    )
    with pytest.raises(
        DatasetError,
        match=r"questions.jsonl, line 2, field 'relevant_ids': names documents "
        r"absent from the corpus: nope",
    ):
        load_questions(path, corpus)


def test_empty_files_are_rejected(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="corpus.jsonl: the corpus is empty"):
        load_corpus(tmp_path / "corpus.jsonl")


def test_bom_and_gbk_are_read_and_binary_is_rejected(tmp_path):
    text = '{"id": "d1", "text": "检索增强生成"}\n'
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (tmp_path / "gbk.jsonl").write_bytes(text.encode("gbk"))
    (tmp_path / "bin.jsonl").write_bytes(b"\x00\x01\x02\xff" * 10)
    assert load_corpus(tmp_path / "bom.jsonl")[0].text == "检索增强生成"
    assert load_corpus(tmp_path / "gbk.jsonl")[0].text == "检索增强生成"
    with pytest.raises(DatasetError, match="bin.jsonl: looks like a binary file"):
        load_corpus(tmp_path / "bin.jsonl")


def test_unicode_line_separators_inside_json_strings_stay_in_their_line(tmp_path):
    # json.dumps keeps U+2028, U+2029, U+0085 and form feeds raw with ensure_ascii=False; str.splitlines cut there
    texts = ["first\u2029second", "a\u2028b", "c\x85d", "e\x0cf"]
    lines = [json.dumps({"id": f"d{n}", "text": t}, ensure_ascii=False) for n, t in enumerate(texts)]
    (tmp_path / "corpus.jsonl").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert [d.text for d in load_corpus(tmp_path / "corpus.jsonl")] == texts


def test_the_real_pubmedqa_questions_load():
    # line 285 of the shared PubMedQA file holds a U+2029 inside its answer
    questions = load_questions(shared_dataset("pubmedqa_pqal_en", "questions.jsonl"))
    assert len(questions) == 1000
    assert "\u2029" in next(q for q in questions if q.id == "28177278").answer


def test_undecodable_non_chinese_bytes_are_rejected_not_garbled():
    latin1 = "café crème brûlée à la carte".encode("latin-1")
    with pytest.raises(DatasetError, match="save the file as UTF-8"):
        decode_bytes(latin1, "menu.txt")


def test_csv_question_set(tmp_path):
    corpus = load_corpus(write_jsonl(tmp_path / "corpus.jsonl", DOCS))
    (tmp_path / "q.csv").write_text(
        "id,question,answer,relevant_ids\nq1,What is alpha?,Alpha,d1|d2\nq2,第二?,,\n", encoding="utf-8"
    )
    questions = load_questions(tmp_path / "q.csv", corpus)
    assert questions[0].relevant_ids == ("d1", "d2") and questions[0].answers == ("Alpha",)
    assert questions[1].question == "第二?" and questions[1].answers == ()
    (tmp_path / "bad.csv").write_text("id,query\nq1,x\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="bad.csv, line 1: the header must name a 'question' column"):
        load_questions(tmp_path / "bad.csv")


def test_beir_folder(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "c1", "title": "T", "text": "one"}, {"_id": "c2", "text": "two"}])
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "1", "text": "first?"}, {"_id": "2", "text": "unjudged?"}])
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tc2\t1\n1\tc1\t0\n", encoding="utf-8")
    dataset = load_dataset(tmp_path)
    assert [d.id for d in dataset.corpus] == ["c1", "c2"]
    assert [(q.id, q.relevant_ids) for q in dataset.questions] == [("1", ("c2",))]
    (tmp_path / "qrels" / "test.tsv").write_text("1\tc9\t1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="names documents absent from the corpus: c9"):
        load_beir(tmp_path)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand so the test needs no PDF writer."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_plain_documents_folder(tmp_path):
    (tmp_path / "guide.md").write_text("# Guide\n\nUse cosine space.", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_bytes("笔记：分块大小".encode("gb18030"))
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf("Retrieval needs recall"))
    (tmp_path / "ignored.bin").write_bytes(b"\x00")
    dataset = load_documents(tmp_path)
    texts = {d.id: d.text for d in dataset.corpus}
    assert set(texts) == {"guide.md", "paper.pdf", "sub/notes.txt"}
    assert texts["sub/notes.txt"] == "笔记：分块大小"
    assert "Retrieval needs recall" in texts["paper.pdf"]
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(DatasetError, match="broken.pdf"):
        load_documents(tmp_path)


@pytest.mark.parametrize(
    "name, paragraphs, first_question",
    [
        ("cmrc2018_dev.json", 848, "DEV_0_QUERY_0"),
        ("xquad.zh.json", 240, "56beb4343aeaaa14008c925b"),
    ],
)
def test_squad_importer_on_real_files(name, paragraphs, first_question):
    dataset = load_squad(shared_dataset("raw", name))
    assert len(dataset.corpus) == paragraphs
    question = dataset.questions[0]
    assert question.id == first_question
    document = next(d for d in dataset.corpus if d.id == question.relevant_ids[0])
    assert all(answer in document.text for answer in question.answers)


def test_squad_importer_agrees_with_the_converted_shared_copy():
    imported = load_squad(shared_dataset("raw", "cmrc2018_dev.json"))
    converted = load_dataset(shared_dataset("cmrc2018_dev_zh"))
    assert [d.id for d in imported.corpus] == [d.id for d in converted.corpus]
    assert {q.id: q.relevant_ids for q in imported.questions} == {q.id: q.relevant_ids for q in converted.questions}


def test_squad_errors_name_the_json_path(tmp_path):
    (tmp_path / "s.json").write_text(
        json.dumps(
            {"data": [{"title": "T", "paragraphs": [{"context": "ctx", "qas": [{"id": "x", "question": ""}]}]}]}
        ),
        encoding="utf-8",
    )
    with pytest.raises(DatasetError, match=r"s.json, field 'data\[0\].paragraphs\[0\].qas\[0\].question': empty"):
        load_squad(tmp_path / "s.json")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DatasetError, match="not SQuAD format"):
        load_squad(tmp_path / "list.json")


def test_shared_folder_with_two_languages_needs_a_choice():
    folder = shared_dataset("xquad_zh_en")
    with pytest.raises(DatasetError, match="pick a language"):
        load_dataset(folder)
    assert len(load_dataset(folder, language="zh").questions) == 1190


def test_native_questions_carry_optional_gold_spans_checked_against_the_corpus(tmp_path):
    folder = native(
        tmp_path,
        DOCS,
        [
            {
                "id": "q1",
                "question": "Alpha?",
                "relevant_ids": ["d1"],
                "spans": [{"doc_id": "d1", "start": 0, "end": 5}],
            },
            {"id": "q2", "question": "No spans?", "relevant_ids": ["d2"]},
        ],
    )
    questions = load_dataset(folder).questions
    assert questions[0].spans == (AnswerSpan("d1", 0, 5),)
    assert questions[1].spans == ()
    corpus = load_corpus(tmp_path / "corpus.jsonl")
    for spans, message in [
        (
            [{"doc_id": "d1", "start": 0, "end": 11}],
            r"field 'spans': span 0-11 ends past the end of document "
            r"'d1' \(10 characters\)",
        ),
        ([{"doc_id": "d9", "start": 0, "end": 1}], "field 'spans': names a document absent from the corpus: d9"),
        ([{"doc_id": "d1", "start": 4, "end": 4}], r"field 'spans\[0\]': needs 0 <= start < end"),
        ([{"doc_id": "d1", "start": "0", "end": 4}], r"field 'spans\[0\]': start and end must be integers"),
        ([{"start": 0, "end": 4}], r"field 'spans\[0\].doc_id': missing"),
        ({"doc_id": "d1"}, "field 'spans': must be a list"),
    ]:
        path = write_jsonl(tmp_path / "bad.jsonl", [{"id": "q1", "question": "?", "spans": spans}])
        with pytest.raises(DatasetError, match=r"bad.jsonl, line 1, " + message):
            load_questions(path, corpus)


def squad_file(tmp_path, context, answers):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {"id": "p", "context": context, "qas": [{"id": "q", "question": "?", "answers": answers}]}
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    return path


def test_squad_answers_become_gold_spans(tmp_path):
    context = "Denver beat Carolina. Denver Broncos won Super Bowl 50 in Santa Clara."
    exact = context.index("Denver Broncos")
    answers = [
        {"text": "Denver Broncos", "answer_start": exact},
        {"text": "Denver Broncos", "answer_start": exact},  # a second annotator: one span
        {"text": "Santa Clara", "answer_start": context.index("Santa Clara") + 2},  # off by two
        {"text": "Denver", "answer_start": exact - 1},  # nearest occurrence, not the first
        {"text": "in Levi's Stadium", "answer_start": -1},
    ]  # not in the context: no span
    question = load_squad(squad_file(tmp_path, context, answers)).questions[0]
    assert [context[s.start : s.end] for s in question.spans] == ["Denver Broncos", "Santa Clara", "Denver"]
    assert question.spans[2].start == exact
    assert {s.doc_id for s in question.spans} == set(question.relevant_ids) == {"p"}
    with pytest.raises(
        DatasetError,
        match=r"field 'data\[0\].paragraphs\[0\].qas\[0\].answers\[0\].answer_start': "
        "must be an integer",
    ):
        load_squad(squad_file(tmp_path, context, [{"text": "Denver", "answer_start": "0"}]))


@pytest.mark.parametrize("name", ["cmrc2018_dev.json", "xquad.zh.json"])
def test_squad_gold_spans_on_real_files_hold_an_answer(name):
    dataset = load_squad(shared_dataset("raw", name))
    texts = {d.id: d.text for d in dataset.corpus}
    spans = [(q, s) for q in dataset.questions for s in q.spans]
    assert all(texts[s.doc_id][s.start : s.end] in q.answers and s.doc_id in q.relevant_ids for q, s in spans)
    assert sum(bool(q.spans) for q in dataset.questions) == len(dataset.questions)
