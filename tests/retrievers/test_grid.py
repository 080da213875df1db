"""The grid builder behind the sweep page: value lists per parameter -> validated retriever configs."""

import pytest

from eval.errors import LabError
from eval.retrievers.grid import grid_configs, grid_spec
from eval.retrievers.vector import RetrieverConfig


def test_each_search_type_takes_only_its_parameters():
    zh = {"lang": "zh"}
    got = grid_configs(
        ["similarity", "mmr", "similarity_score_threshold"],
        [3, 10],
        fetch_ks=[5, 20],
        lambdas=[0.25, 0.75],
        thresholds=[0.5],
        filter_obj=zh,
    )
    create = RetrieverConfig.create
    expected = [
        create("similarity", k=3, filter=zh),
        create("similarity", k=10, filter=zh),
        *[create("mmr", k=3, fetch_k=f, lambda_mult=lam, filter=zh) for f in (5, 20) for lam in (0.25, 0.75)],
        # fetch_k 5 is below k 10: only fetch_k 20 pairs with k 10
        *[create("mmr", k=10, fetch_k=20, lambda_mult=lam, filter=zh) for lam in (0.25, 0.75)],
        create("similarity_score_threshold", k=3, score_threshold=0.5, filter=zh),
        create("similarity_score_threshold", k=10, score_threshold=0.5, filter=zh),
    ]
    assert got == expected


def test_without_a_filter_the_spec_has_none():
    spec = grid_spec(["similarity"], [4])
    assert spec == {"configs": [{"search_type": "similarity", "k": [4]}]}
    assert grid_configs(["similarity"], [4]) == [RetrieverConfig.create("similarity", k=4)]


def test_impossible_grids_are_explained():
    with pytest.raises(LabError, match="every fetch_k is below k=10; add a fetch_k of at least 10"):
        grid_configs(["mmr"], [10], fetch_ks=[5], lambdas=[0.5])
    with pytest.raises(LabError, match="choose at least one search type"):
        grid_configs([], [3])
    with pytest.raises(LabError, match="lambda_mult"):
        grid_configs(["mmr"], [3], fetch_ks=[5], lambdas=[1.5])
