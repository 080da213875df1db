"""Reading real questions (plain lists and the query-log exports of Dify, RAGFlow and Langchain-Chatchat, written
here from their documented shapes, in Chinese and English) and de-duplicating them into a weighted question set."""

import csv
import json
import sqlite3

import numpy as np
import pytest

from eval.data.datasets import load_question_set
from eval.data.question_import import FileRead, deduplicate, normalise, read_questions, write_question_set
from eval.errors import DatasetError


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def jsonl(path, records):
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# ---------------------------------------------------------------- plain lists


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "gbk"])
def test_a_txt_list_is_one_question_a_line_in_any_encoding_the_lab_reads(tmp_path, encoding):
    path = write(
        tmp_path / "questions.txt", "如何重置密码？\n\n  How do I reset my password?  \r\n\n什么是向量检索\n", encoding
    )
    read = read_questions(path)
    assert (read.format, read.questions) == ("txt", ["如何重置密码？", "How do I reset my password?", "什么是向量检索"])


def test_a_csv_column_by_its_default_name_or_the_one_named(tmp_path):
    path = write(
        tmp_path / "log.csv",
        '时间,问题,用户\n2024-01-01,如何重置密码？,u1\n2024-01-02,,u2\n2024-01-03,"Hi, how do I log in?",u3\n',
    )
    read = read_questions(path)
    assert (read.format, read.questions, dict(read.skipped)) == (
        "csv",
        ["如何重置密码？", "Hi, how do I log in?"],
        {"empty questions": 1},
    )
    named = write(tmp_path / "named.csv", "ts,ask\n1,What is RAG?\n")
    assert read_questions(named, column="ask").questions == ["What is RAG?"]
    assert read_questions(named, column="ASK").questions == ["What is RAG?"]  # any case


def test_a_jsonl_field_by_default_name_dotted_or_a_json_list_of_strings(tmp_path):
    path = jsonl(tmp_path / "log.jsonl", [{"ts": 1, "Query": "What is RAG?"}, {"ts": 2, "Query": "什么是 RAG？"}])
    assert read_questions(path).questions == ["What is RAG?", "什么是 RAG？"]
    nested = jsonl(tmp_path / "nested.jsonl", [{"event": {"text": "How do I log in?"}}])
    assert read_questions(nested, field="event.text").questions == ["How do I log in?"]
    listed = write(tmp_path / "list.json", json.dumps(["What is RAG?", "如何登录？"], ensure_ascii=False))
    assert (read_questions(listed).format, read_questions(listed).questions) == (
        "jsonl",
        ["What is RAG?", "如何登录？"],
    )


# ---------------------------------------------------------------- Dify


def dify_message(query, inputs=None, **extra):
    """An item of `GET /v1/messages` (dify-docs openapi_service.json): one turn, question in `query`."""
    return {
        "id": "9da23599-e713-473b-982c-4328d4f5c78a",
        "conversation_id": "45701982-8118-4bc5-8e9b-64562b4555f2",
        "parent_message_id": None,
        "inputs": inputs or {},
        "query": query,
        "answer": "An answer that is not a question?",
        "status": "normal",
        "error": None,
        "message_files": [],
        "feedback": {"rating": "like"},
        "retriever_resources": [{"position": 1, "content": "a chunk?", "score": 0.9}],
        "agent_thoughts": [],
        "created_at": 1705407629,
        "extra_contents": [],
        **extra,
    }


def test_dify_message_pages_take_query_or_inputs_query_and_never_the_console_prompt(tmp_path):
    page = {
        "limit": 20,
        "has_more": False,
        "data": [
            dify_message("What are the specs of the iPhone 13 Pro Max?"),
            dify_message("", inputs={"query": "帮我总结这份合同"}),  # a completion app: the question is in inputs
            # a console item: `message` holds the prompt sent to the model (system + history), never a question
            dify_message(
                "如何申请报销？",
                message=[
                    {"role": "system", "text": "You are a helpful assistant."},
                    {"role": "user", "text": "如何申请报销？"},
                ],
            ),
        ],
    }
    read = read_questions(write(tmp_path / "messages.json", json.dumps(page, ensure_ascii=False)))
    assert (read.format, read.questions) == (
        "dify",
        ["What are the specs of the iPhone 13 Pro Max?", "帮我总结这份合同", "如何申请报销？"],
    )


def test_dify_console_logs_feedback_and_annotation_exports(tmp_path):
    logs = {
        "page": 1,
        "limit": 20,
        "total": 2,
        "has_more": False,
        "data": [
            {
                "id": "l1",
                "conversation": {"id": "c1", "name": "n", "status": "normal"},
                "message": {
                    "id": "m1",
                    "conversation_id": "c1",
                    "query": "How do I export a report?",
                    "answer": "Click it.",
                    "status": "normal",
                    "from_source": "api",
                },
                "created_from": "web-app",
                "created_at": "2025-01-01",
            },
            {
                "id": "l2",
                "conversation": {"id": "c2"},
                "message": {"id": "m2", "query": "报表怎么导出？", "answer": "点导出"},
            },
        ],
    }
    assert read_questions(write(tmp_path / "logs.json", json.dumps(logs, ensure_ascii=False))).questions == [
        "How do I export a report?",
        "报表怎么导出？",
    ]
    header = (
        "feedback_id,app_name,app_id,conversation_id,conversation_name,message_id,user_query,ai_response,"
        "feedback_rating,feedback_rating_raw,feedback_comment,feedback_source,feedback_date,message_date,"
        "from_account_name,from_end_user_id,has_comment"
    )
    row = (
        'f1,App,a1,c1,Conv,m1,如何重置密码？,"Go to settings, then...",👍,like,,user,'
        "2025-01-01 10:00:00,2025-01-01 09:59:00,,u1,No"
    )
    feedback = read_questions(write(tmp_path / "feedback.csv", header + "\n" + row + "\n", "utf-8-sig"))
    assert (feedback.format, feedback.questions) == ("dify", ["如何重置密码？"])
    feedback_json = {
        "export_info": {"app_id": "a1", "total_records": 1, "data_source": "dify_feedback_export"},
        "feedback_data": [{"feedback_id": "f1", "user_query": "What is the refund policy?", "ai_response": "..."}],
    }
    assert read_questions(write(tmp_path / "feedback.json", json.dumps(feedback_json))).questions == [
        "What is the refund policy?"
    ]
    annotations = write(tmp_path / "annotations-zh-Hans.csv", "问题,答案\n如何开发票？,在订单页开具\n", "utf-8-sig")
    assert (read_questions(annotations).format, read_questions(annotations).questions) == ("dify", ["如何开发票？"])
    lines = jsonl(
        tmp_path / "annotations-en-US.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": ""},
                    {"role": "user", "content": "How do I get an invoice?"},
                    {"role": "assistant", "content": "From the order page."},
                ]
            }
        ],
    )
    read = read_questions(lines)
    assert (read.format, read.questions, dict(read.skipped)) == (
        "dify",
        ["How do I get an invoice?"],
        {"system prompts": 1, "assistant replies": 1},
    )
    hits = {
        "data": [
            {
                "id": "h1",
                "source": "api",
                "score": 0.93,
                "question": "发票怎么开？",
                "created_at": 1,
                "match": "如何开发票？",
                "response": "在订单页开具",
            }
        ]
    }
    assert read_questions(write(tmp_path / "hits.json", json.dumps(hits, ensure_ascii=False))).questions == [
        "发票怎么开？"
    ]


# ---------------------------------------------------------------- RAGFlow


def test_ragflow_sessions_keep_user_messages_only(tmp_path):
    """`GET /api/v1/chats/{id}/sessions`: the prologue (first assistant message, no id), replies and system
    prompts are not questions; agent sessions name their list `message`."""
    sessions = {
        "code": 0,
        "data": [
            {
                "chat_id": "2ca4b22e878011ef88fe0242ac120005",
                "create_date": "Fri, 11 Oct 2024 08:46:43 GMT",
                "create_time": 1728636403974,
                "id": "4606b4ec87ad11efbc4f0242ac120006",
                "name": "new session",
                "messages": [
                    {"role": "assistant", "content": "Hi! I am your assistant, can I help you?"},
                    {"role": "user", "content": "什么是 RAGFlow？", "id": "u1"},
                    {"role": "assistant", "content": "一个 RAG 引擎。", "created_at": 1728636410.5, "id": "u1"},
                    {"role": "user", "content": "How do I upload a PDF?", "id": "u2"},
                    {"role": "assistant", "content": "Use the dataset page.", "id": "u2"},
                ],
                "reference": [],
                "update_time": 1728636403974,
                "user_id": "",
            },
            {
                "chat_id": "2ca4",
                "id": "s2",
                "name": "with history",
                "messages": [
                    {"role": "system", "content": "Answer in Chinese."},
                    {"role": "user", "content": "如何删除知识库？"},
                ],
            },
        ],
    }
    read = read_questions(write(tmp_path / "sessions.json", json.dumps(sessions, ensure_ascii=False)))
    assert (read.format, read.questions) == (
        "ragflow",
        ["什么是 RAGFlow？", "How do I upload a PDF?", "如何删除知识库？"],
    )
    assert dict(read.skipped) == {"greetings": 1, "assistant replies": 2, "system prompts": 1}
    agent = {
        "code": 0,
        "data": [
            {
                "agent_id": "a",
                "id": "s3",
                "source": "agent",
                "dsl": {},
                "message": [
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "Book a meeting room", "id": "x"},
                ],
            }
        ],
    }
    assert read_questions(write(tmp_path / "agent.json", json.dumps(agent))).questions == ["Book a meeting room"]


# ---------------------------------------------------------------- Langchain-Chatchat

CHATCHAT_ROWS = [  # (query, response): a row whose response is "" never finished
    ("如何配置 Embedding 模型？", "在 model_settings.yaml 中设置。"),
    ("How do I start the API server?", "Run chatchat start -a."),
    ("这一条没有回答完", ""),
]


def test_chatchat_message_table_from_its_sqlite_database(tmp_path):
    path = tmp_path / "info.db"
    with sqlite3.connect(path) as db:  # the `message` table of 0.2.8+ and 0.3.x
        db.execute(
            "CREATE TABLE message (id VARCHAR(32) PRIMARY KEY, conversation_id VARCHAR(32), chat_type "
            "VARCHAR(50), query VARCHAR(4096), response VARCHAR(4096), meta_data JSON, feedback_score INTEGER "
            "DEFAULT -1, feedback_reason VARCHAR(255) DEFAULT '', create_time DATETIME)"
        )
        db.executemany(
            "INSERT INTO message VALUES (?, ?, 'llm_chat', ?, ?, '{}', -1, '', ?)",
            [(f"m{i}", "c1", q, r, f"2025-01-0{i + 1} 10:00:00") for i, (q, r) in enumerate(CHATCHAT_ROWS)],
        )
    read = read_questions(path)
    assert (read.format, read.questions, dict(read.skipped)) == (
        "chatchat",
        ["如何配置 Embedding 模型？", "How do I start the API server?"],
        {"unanswered rows (empty response)": 1},
    )


def test_chatchat_message_table_as_csv_and_json_lines(tmp_path):
    with open(tmp_path / "message.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "id",
                "conversation_id",
                "chat_type",
                "query",
                "response",
                "meta_data",
                "feedback_score",
                "feedback_reason",
                "create_time",
            ]
        )
        writer.writerows(
            [[f"m{i}", "c1", "llm_chat", q, r, "{}", -1, "", "2025-01-01"] for i, (q, r) in enumerate(CHATCHAT_ROWS)]
        )
    as_csv = read_questions(tmp_path / "message.csv")
    as_jsonl = read_questions(
        jsonl(
            tmp_path / "message.jsonl",
            [
                {"id": f"m{i}", "conversation_id": "", "chat_type": "llm_chat", "query": q, "response": r}
                for i, (q, r) in enumerate(CHATCHAT_ROWS)
            ],
        )
    )
    for read in (as_csv, as_jsonl):
        assert (read.format, read.questions, read.skipped["unanswered rows (empty response)"]) == (
            "chatchat",
            ["如何配置 Embedding 模型？", "How do I start the API server?"],
            1,
        )


def test_chatchat_webui_markdown_export(tmp_path):
    """streamlit-chatbox's export2md, which Chatchat's 导出记录 button writes: the first row is the greeting."""

    def row(who, color, text):
        return (
            f'|<div style="background-color:{color}">{who}</div>|<div style="background-color:{color}">{text}</div>|\n'
        )

    text = (
        "<style> td, th {border: none!important;}</style>\n|  |  |\n|--|--|\n"
        + row("AI", "#E0F7FA", "您好，我是智能助手，请问有什么需要帮助的？")
        + row("User", "#DCFDC8", "如何切换知识库？")
        + row("AI", "#E0F7FA", "在左侧选择。<br>然后提问。")
        + row("User", "#DCFDC8", "What models are supported?<br>And which is the default?")
    )
    read = read_questions(write(tmp_path / "2025-01-01 10.00_对话记录.md", text))
    assert read.format == "chatchat"
    assert read.questions == ["如何切换知识库？", "What models are supported?\nAnd which is the default?"]
    assert dict(read.skipped) == {"greetings": 1, "assistant replies": 1}


# ---------------------------------------------------------------- bad input: one line each


def bad_inputs(tmp_path):
    jsonl(tmp_path / "unknown.jsonl", [{"ts": 1, "user": "u1", "text_body": "How do I log in?"}])
    write(tmp_path / "nocolumn.csv", "ts,user,text\n1,u1,How do I log in?\n")
    write(tmp_path / "empty.txt", "\n\n")
    write(tmp_path / "zero.csv", "")
    write(tmp_path / "broken.jsonl", '{"query": "a?"}\n{"query": "b?"}\n{"query": \n')
    write(tmp_path / "ragflow-error.json", '{"code": 102, "message": "You don\'t own the chat"}')
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    jsonl(tmp_path / "dify.jsonl", [dify_message("How?")])
    return [
        (
            "unknown.jsonl",
            {},
            "unknown.jsonl, line 1: no field named question / query / 问题 (there are: ts, user, "
            "text_body): name the field that holds the questions (--field), or expected one question a line",
        ),
        (
            "nocolumn.csv",
            {},
            "nocolumn.csv, line 1: no column named question / query / 问题 (there are: ts, user, text)",
        ),
        ("nocolumn.csv", {"column": "ask"}, "nocolumn.csv, line 1: no column 'ask' (there are: ts, user, text)"),
        ("empty.txt", {}, "empty.txt: the file is empty: expected one question a line"),
        ("zero.csv", {}, "zero.csv: the file is empty"),
        ("broken.jsonl", {}, "broken.jsonl, line 3: invalid JSON (Expecting value at column 11)"),
        ("ragflow-error.json", {}, "ragflow-error.json: a RAGFlow error response (code 102: You don't own the chat)"),
        ("other.db", {}, "other.db: a SQLite database without Langchain-Chatchat's `message` table (tables: users)"),
        (
            "dify.jsonl",
            {"fmt": "ragflow"},
            "dify.jsonl, line 1: not a ragflow export: expected chat sessions with `messages` of {role, content}",
        ),
        (
            "dify.jsonl",
            {"fmt": "yaml"},
            "dify.jsonl: unknown format 'yaml' (use auto, txt, csv, jsonl, dify, ragflow, chatchat)",
        ),
    ]


def test_bad_inputs_give_one_line_naming_file_line_and_what_was_expected(tmp_path):
    for name, options, message in bad_inputs(tmp_path):
        with pytest.raises(DatasetError) as caught:
            read_questions(tmp_path / name, **options)
        assert str(caught.value).startswith(message), (name, str(caught.value))
        assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- de-duplication


@pytest.mark.parametrize(
    "a, b",
    [
        ("What is RAG?", "  what   is RAG ？"),
        ("What is RAG?", "ＷＨＡＴ　ＩＳ　ＲＡＧ！"),  # full-width letters and space
        ("什么是 RAG？", "什么是RAG。"),
        ("如何 重置 密码", "如何重置密码？？"),
        ("Is it free...", "is it free…"),
    ],
)
def test_normalising_makes_spelling_variants_equal(a, b):
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(
    "a, b",
    [("What is RAG?", "What is RAG used for?"), ("如何重置密码？", "如何修改密码？"), ("Who is he?", "Who is she?")],
)
def test_normalising_keeps_different_questions_apart(a, b):
    assert normalise(a) != normalise(b)


def reads(*texts):
    return [FileRead(path=None, format="txt", questions=list(texts), skipped=None)]


def test_exact_duplicates_keep_the_most_frequent_spelling_and_weigh_every_line(tmp_path):
    result = deduplicate(
        reads(
            "what is rag",
            "How do I log in?",
            "What is RAG?",
            "What is RAG?",
            "什么是RAG",
            "什么是 RAG？",
            "what is rag?",
        )
    )
    assert [(q.question, q.weight) for q in result.questions] == [
        ("What is RAG?", 4),
        ("什么是RAG", 2),
        ("How do I log in?", 1),
    ]
    assert sorted((d.text, d.count, d.kept) for d in result.exact) == [
        ("What is RAG?", 1, "What is RAG?"),
        ("what is rag", 1, "What is RAG?"),
        ("what is rag?", 1, "What is RAG?"),
        ("什么是 RAG？", 1, "什么是RAG"),
    ]
    assert result.near == [] and result.threshold is None
    # the id comes from the normalised text: another log with the same question gives it the same id
    assert deduplicate(reads("WHAT IS RAG")).questions[0].id == result.questions[0].id
    path = write_question_set(result, tmp_path / "set")
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][0] == {
        "id": result.questions[0].id,
        "question": "What is RAG?",
        "weight": 4,
    }
    loaded = load_question_set(tmp_path / "set")  # the folder is a question set `run` and Labels take
    assert [(q.question, q.weight, q.answers, q.relevant_ids) for q in loaded] == [
        ("What is RAG?", 4, (), ()),
        ("什么是RAG", 2, (), ()),
        ("How do I log in?", 1, (), ()),
    ]
    with pytest.raises(DatasetError, match="already holds a question set: choose a new folder"):
        write_question_set(result, tmp_path / "set")


def fixed_vectors(vectors):
    """An `embed` that returns hand-made unit vectors by text (what the merge rule is tested with)."""
    table = {text: np.asarray(v, float) / np.linalg.norm(v) for text, v in vectors.items()}
    return lambda texts: np.array([table[t] for t in texts])


def test_near_duplicates_join_the_closest_more_frequent_kept_question():
    # cosines: a-a2 0.98, b-a2 0.97 (a2 goes to a, its closest), c-b 0.99 but b is merged... c compared with kept only
    angle = {"a": 0.0, "a2": 0.2, "b": 0.45, "c": 0.6, "far": 1.5}
    embed = fixed_vectors({t: [np.cos(x), np.sin(x)] for t, x in angle.items()})
    texts = ["a"] * 3 + ["b"] * 2 + ["a2", "c", "far"]
    result = deduplicate(reads(*texts), embed, threshold=float(np.cos(0.25)), encoder="hand-made")
    assert [(q.question, q.weight) for q in result.questions] == [("a", 4), ("b", 3), ("far", 1)]
    assert [(d.text, d.count, d.kept, round(d.cosine, 4)) for d in result.near] == [
        ("a2", 1, "a", round(np.cos(0.2), 4)),
        ("c", 1, "b", round(np.cos(0.15), 4)),
    ]
    assert sum(q.weight for q in result.questions) == len(texts)
    assert deduplicate(reads(*texts), embed, threshold=0.9999).near == []
