"""`judged`: the share of retrieved chunks a label source has graded; complete sources judge every chunk of a
question they label, and an empty list has nothing to judge (NaN, not 0)."""

import math

import pytest

from eval.metrics.passage import passage_metrics
from eval.schema import Span

ANSWER = [Span("d1", 10, 20, 1)]  # the one relevant passage a source marks for the question
# three chunks: over the answer, beside it in the same document, in another document
CHUNKS = [Span("d1", 0, 15), Span("d1", 30, 40), Span("d2", 0, 5)]


def test_under_a_complete_source_every_chunk_of_a_labelled_question_is_judged():
    complete = passage_metrics(CHUNKS, ANSWER, ["judged", "judged@2", "judged@5", "passage_precision"], True)
    assert complete == pytest.approx({"judged": 1.0, "judged@2": 1.0, "judged@5": 3 / 5, "passage_precision": 1 / 3})
    # an incomplete source (a person, an LLM) has graded only the chunk over its span
    partial = passage_metrics(CHUNKS, ANSWER, ["judged", "judged@2", "passage_precision"], False)
    assert partial == pytest.approx({"judged": 1 / 3, "judged@2": 1 / 2, "passage_precision": 1 / 3})


def test_a_question_a_complete_source_does_not_label_stays_unjudged():
    assert passage_metrics(CHUNKS, [], ["judged"], True) == {"judged": 0.0}


@pytest.mark.parametrize("complete", [True, False])
def test_an_empty_list_is_not_counted_as_unjudged(complete):
    values = passage_metrics([], ANSWER, ["judged", "judged@3", "passage_precision", "passage_recall"], complete)
    assert math.isnan(values["judged"]) and math.isnan(values["judged@3"])
    # it still missed the answer: nothing retrieved is a miss, not a hole in the labels
    assert values["passage_precision"] == 0.0 and values["passage_recall"] == 0.0
