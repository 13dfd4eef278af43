"""melange-nb: the cheapest mix of GPU types for an LLM workload (after Mélange, arXiv 2404.14527).

Public API, one module per pipeline stage: workload (histograms), profiles (GPU costs and
throughputs), solver (Mélange ILP, exact, single-GPU baselines), report (figures, HTML),
run (papermill runs into outputs/).
"""
from .errors import DatasetError, InputError, MelangeError
from .profiles import GpuProfile, load_gpus, read_melange_config
from .solver import Comparison, Constraints, SolveResult, compare, savings_table, solve
from .workload import read_workload, write_workload

__all__ = ["Comparison", "Constraints", "DatasetError", "GpuProfile", "InputError", "MelangeError",
           "SolveResult", "compare", "load_gpus", "read_melange_config", "read_workload", "savings_table",
           "solve", "write_workload"]
