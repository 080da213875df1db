"""Query vectors of the fast path are the ones LangChain's retriever searches with (`embed_query`), bit for bit."""

import numpy as np
import pytest

from eval.index.encoders import get_embeddings


@pytest.mark.slow  # over 10 s in a full run (subprocesses / the sample's queries)
def test_e5_query_batches_are_embed_query_bit_for_bit(sample_dataset):
    model = get_embeddings("e5-small")
    texts = [q.question for q in sample_dataset.questions] + [d.text[:200] for d in sample_dataset.corpus]
    single = np.asarray([model.embed_query(text) for text in texts], np.float32)
    assert np.array_equal(model.embed_queries(texts), single)
    assert model.batch_size < len(texts)  # more than one batch was compared
