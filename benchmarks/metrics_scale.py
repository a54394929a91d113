"""All-vs-all version-identification metrics at Discogs-VI-test scale (issue: ≤ 5 min, ≤ 4 GB on 2 cores).

Synthetic data of the real size: 116,197 L2-normalised 768-d vectors in 9,878 cliques
(sizes drawn to average ~11.8 versions); members of a clique are noisy copies of a centroid so
the metrics are non-trivial. Reports wall time and peak resident memory (ru_maxrss).

    python benchmarks/metrics_scale.py [--n 116197] [--cliques 9878] [--block-size 2048]
        [--out results/benchmarks/metrics_scale.json]

Prints the measurements and the metrics as JSON and writes them to --out.
"""

import argparse
import json
import resource
import time

import numpy as np
import torch

from paperlib.evaluation import metrics
from paperlib.runtime.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=116_197)
    parser.add_argument("--cliques", type=int, default=9_878)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--out", default="results/benchmarks/metrics_scale.json")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    labels = np.sort(rng.integers(0, args.cliques, args.n))
    centroids = rng.standard_normal((args.cliques, args.dim), dtype=np.float32)
    x = centroids[labels] + 2.5 * rng.standard_normal((args.n, args.dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    del centroids
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    summary, _ = metrics.evaluate(x, labels, block_size=args.block_size)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "n": args.n,
        "cliques": args.cliques,
        "dim": args.dim,
        "threads": torch.get_num_threads(),
        "block_size": args.block_size,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak, 2),
        "rss_before_eval_gib": round(before, 2),
        "input_matrix_gib": round(x.nbytes / 2**30, 2),
        **summary,
    }
    print(json.dumps(result, indent=1))
    write_json(result, args.out)


if __name__ == "__main__":
    main()
