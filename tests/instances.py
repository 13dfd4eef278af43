"""Seeded random solver instances for tests and benchmarks (bench/ puts this folder on sys.path).

Kept out of the package: they exist to exercise the solvers, and inside melange_nb they made the
import cycle chats -> synthetic -> profiles -> workload -> chats.
"""
import numpy as np

from melange_nb.profiles import parse_gpu_info
from melange_nb.workload import labelled_matrix


def random_instance(seed: int, n_buckets: int = 6, n_gpus: int = 3, *, zero_share: float = 0.1):
    """A seeded random solver instance: (workload, gpus) with `n_buckets` x `n_buckets` buckets.

    Shaped like profiled LLM serving (the seed's A10G/A100 matrices): throughput falls about
    1000x from the smallest to the largest bucket; each GPU type has a speed and a size
    preference (bigger GPUs gain more on long requests, as the A100 does over the A10G), and is
    priced near its average throughput (x0.8-1.25), so no type dominates everywhere. With
    probability `zero_share` per bucket row a GPU type other than the first cannot serve the
    largest buckets (memory). For benchmarks and property tests.
    """
    rng = np.random.default_rng(seed)
    labels = [f"b{i}" for i in range(n_buckets)]
    size = np.add.outer(np.arange(n_buckets), np.arange(n_buckets) * 1.4)
    size = size / max(size.max(), 1.0)                       # 0 (smallest bucket) .. 1 (largest)
    base = 40.0 * np.exp(-6.5 * size)
    gpus = {}
    for g in range(n_gpus):
        speed = float(rng.uniform(0.3, 3.0))
        preference = float(rng.uniform(-1.0, 1.5))             # > 0: relatively better on large buckets
        tputs = base * speed * np.exp(preference * size) * rng.uniform(0.85, 1.15, size=base.shape)
        if g > 0 and rng.random() < zero_share * n_buckets:
            tputs[size >= np.quantile(size, 0.8)] = 0.0
        cost = round(speed * float(np.exp(preference * 0.5)) * float(rng.uniform(0.8, 1.25)), 2) + 0.05
        gpus[f"gpu{g}"] = {"cost": cost, "tputs": np.round(tputs, 3).tolist()}
    shares = rng.dirichlet(np.full(n_buckets * n_buckets, 0.7)).reshape(n_buckets, n_buckets)
    workload = labelled_matrix(shares / shares.sum(), labels, labels, field="random workload")
    return workload, parse_gpu_info(gpus, labels, labels)
