"""The tiny corpus the session's tiny dataset is made of, and a dataset written out as a data folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

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


def write_dataset(folder: Path, dataset) -> Path:
    """`corpus.jsonl` and `questions.jsonl` of the dataset in `folder`, as a user's data folder holds them (a
    question's gold answer spans too, where it has them)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc in dataset.corpus:
            handle.write(
                json.dumps(
                    {"id": doc.id, "text": doc.text, "title": doc.title, "metadata": doc.metadata}, ensure_ascii=False
                )
                + "\n"
            )
    with open(folder / "questions.jsonl", "w", encoding="utf-8") as handle:
        for q in dataset.questions:
            spans = {"spans": [dataclasses.asdict(span) for span in q.spans]} if q.spans else {}
            record = {
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "relevant_ids": list(q.relevant_ids),
                **spans,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return folder
