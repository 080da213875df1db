"""The Markdown report renders every user-derived text (questions, answers, chunk texts and ids, config ids,
index names) as the text itself: rendered by a real CommonMark renderer with GitHub's tables and
strikethrough, hostile texts make no link, image, emphasis, code, extra table cell or HTML."""

from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt
from support.paths import SESSION_EMBEDDING_CACHE
from support.retriever_stub_server import RetrieverStubServer, search_entry

from eval.data.datasets import Dataset
from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.report.render import report_markdown
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.schema import Document, Question
from eval.sweep.engine import SweepOptions, run_sweep

LINK = "[x](javascript:alert(1))"
HOSTILE = [
    LINK,
    "![img](http://evil.example/a.png)",
    "*em* _under_ **strong** __strong__",
    "a | b | c",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "<http://evil.example>",
    "~~gone~~",
    "`code` and ``double``",
    "&lt;b&gt; &amp;",
    "中文 *强调* [链接](javascript:alert(3))",
    "$x^2$ \\*kept\\*",
]
INDEX_NAME = f"idx {LINK} *em*"
CONFIG_TAG = "[y](javascript:alert(4))"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    corpus = [
        Document("doc`1|a", "Chroma stores vectors in a folder. " + " ".join(HOSTILE[:6])),
        Document("doc*2*", "中文文本按句号切分。" + " ".join(HOSTILE[6:])),
        Document("bread", "To bake bread, mix flour, water, salt and yeast."),
    ]
    questions = [
        Question(
            f"q [1]({LINK})",
            f"Where does Chroma store vectors? {HOSTILE[0]} {HOSTILE[2]}",
            (f"in a folder {HOSTILE[3]}",),
            ("doc`1|a",),
        ),
        Question("q*2*", f"中文文本怎么切分？{HOSTILE[10]}", ("句号",), ("doc*2*",)),
    ]
    root = tmp_path_factory.mktemp("markdown")
    store = IndexStore(root / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    store.build(Dataset("hostile", corpus, questions), INDEX_NAME, "minilm", ChunkingParams(300, 0))
    index = store.open(INDEX_NAME)
    with RetrieverStubServer(index) as stub:
        configs = parse_sweep(
            {
                "configs": [
                    {"search_type": "similarity", "k": 2},
                    search_entry(
                        stub.url, request={"q": "{question}", "tag": "{tag}", "size": 2}, params={"tag": CONFIG_TAG}
                    ),
                ]
            }
        )
        runs = RunStore(root / "runs")
        run = runs.load(run_sweep(runs, index, configs, questions, "hostile", SweepOptions(latency_sample=0)))
    return run


class Elements(HTMLParser):
    """The tags of rendered HTML (with their text) and all its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[list] = []  # [tag, attributes, text]
        self.open: list[list] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), ""]
        self.tags.append(element)
        self.open.append(element)

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        self.text.append(data)
        for element in self.open:
            element[2] += data

    def named(self, tag: str) -> list[list]:
        return [element for element in self.tags if element[0] == tag]


def test_hostile_texts_render_as_themselves(hostile_run):
    markdown = report_markdown(hostile_run)
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
    elements = Elements(html)
    found = {element[0] for element in elements.tags}
    assert not found & {"a", "img", "em", "del", "script", "h4", "h5", "h6"}, found
    assert {element[2] for element in elements.named("strong")} <= {"Warning:"}
    text = "".join(elements.text)
    config_id = f"http_json-tag{CONFIG_TAG}"
    for shown in (*HOSTILE[:3], HOSTILE[10], INDEX_NAME, config_id, "q [1](" + LINK + ")", "q*2*"):
        assert shown in text, shown
    # the leaderboard: one table; a pipe or bracket in a config id stays inside its cell
    assert len(elements.named("table")) == 1 and len(elements.named("tr")) == 3
    header = [e[2] for e in elements.named("th")]
    cells = [e[2] for e in elements.named("td")]
    assert header[0] == "config_id" and len(cells) == 2 * len(header)
    assert sorted(cells[:: len(header)]) == sorted([config_id, "similarity-k2"])
    # chunk ids are code spans, shown verbatim (a backtick and a pipe inside)
    codes = {e[2] for e in elements.named("code")}
    assert codes <= set(hostile_run.chunk_texts) and {c.split(":")[-1] for c in codes} >= {"doc`1|a#0"}
    # headings: the report's own, and one per worst question, whatever the question says
    assert [e[2] for e in elements.named("h1")] == [f"Retriever Lab report: run {hostile_run.run_id}"]
    assert {e[2] for e in elements.named("h3")} == {f"{q.id}: {q.question}" for q in hostile_run.questions}
