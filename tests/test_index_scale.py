"""benchmarks/index_scale.py: the synthetic catalogue matches the demo's cosines, and the demo enters it intact."""

import importlib.util
from pathlib import Path

import numpy as np

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
