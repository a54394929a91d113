"""benchmarks/index_scale.py: the synthetic catalogue matches the demo's cosines, and the demo enters it intact."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("index_scale", Path(__file__).parents[1] / "benchmarks/index_scale.py")
index_scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(index_scale)


def test_the_fitted_generator_reproduces_the_target_cosine_moments():
    target = np.array([0.94, 0.04, 0.67, 0.085])  # same work mean, sd; different works mean, sd (the demo's)
    gen, fitted = index_scale.fit_generator(target, dim=64, works=100)
    np.testing.assert_allclose(fitted, target, atol=0.01)
    assert 0 < gen.a2 < 1 and 0 < gen.b2 < 1 - gen.a2


def test_the_demo_enters_the_catalogue_with_every_cosine_kept_and_its_main_axis_on_g():
    rng = np.random.default_rng(0)
    demo = rng.standard_normal((30, 16)) + 4 * rng.standard_normal(16)  # a shared direction, like LIVI's
    demo = (demo / np.linalg.norm(demo, axis=1, keepdims=True)).astype(np.float32)
    rot = index_scale.rotation(48, seed=1)
    placed = index_scale.demo_into_catalogue(demo, rot)
    assert placed.shape == (30, 48)
    np.testing.assert_allclose(placed @ placed.T, demo @ demo.T, atol=1e-5)
    mean = placed.mean(axis=0)
    assert mean @ rot[:, 0] > 0.99 * np.linalg.norm(mean)  # the demo's mean direction is the catalogue's g


def test_the_ideal_code_error_is_the_gaussian_rate_distortion_bound():
    # 4 equal components, 8 bits: 2 bits each, distortion 2^-4 each (Cover & Thomas §10.3.3), σ = √(4/16)
    assert index_scale.ideal_code_error(np.ones(4), 8) == pytest.approx(0.5, rel=1e-6)
    # reverse water-filling: 2 bits all go to the large component, the small one is not coded at all
    assert index_scale.ideal_code_error(np.array([1.0, 1e-6]), 2) == pytest.approx(np.sqrt(1 / 16 + 1e-6), rel=1e-6)


def test_recall_under_error_falls_from_one_as_the_error_grows():
    scores = np.sort(np.random.default_rng(0).uniform(0.5, 0.9, (50, 1000)), axis=1)[:, ::-1].astype(np.float32)
    assert index_scale.recall_under_error(scores, 0.0) == 1.0
    small, large = index_scale.recall_under_error(scores, 1e-3), index_scale.recall_under_error(scores, 1.0)
    assert 0.5 < small < 1.0 and large < 0.05  # σ = 1 ≫ the score range: about 10 / 1000 by chance


def row(index, covers, demo_map, recall=0.96, ms=0.5, size=200.0, tracks=1000):
    return {
        "index": index,
        "tracks": tracks,
        "recall@10": recall,
        "covers@10": covers,
        "demo_map": demo_map,
        "ms_batched": ms,
        "bytes_per_track": size,
    }


def test_the_choice_takes_the_most_covers_among_rows_meeting_the_goal_else_the_fewest_bytes_keeping_them():
    flat = row("Flat", 0.97, 0.97, recall=1.0, ms=7.0, size=3072.0)
    fast = row("fast", 0.90, 0.95, size=100.0)
    better = row("better", 0.94, 0.96, size=250.0)
    chosen = index_scale.choose([flat, fast, better], exact_map=0.97)
    assert chosen["meets_goal"] and chosen["row"]["index"] == "better"
    slow = row("slow", 0.965, 0.968, ms=2.0, size=800.0)  # keeps the covers, misses the speed goal
    partial = row("partial", 0.99, 0.99, tracks=10)  # not measured on the whole catalogue
    chosen = index_scale.choose([flat, slow, partial, row("lossy", 0.9, 0.9, ms=2.0)], exact_map=0.97)
    assert not chosen["meets_goal"] and chosen["row"]["index"] == "slow"
