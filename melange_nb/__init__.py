"""melange-nb: the cheapest mix of GPU types for an LLM workload (after Mélange, arXiv 2404.14527).

Public API, one module per pipeline stage:

- workload: labelled request-size histograms, traces, blends (chats: chat datasets and
  tokenization into per-request lengths; synthetic: the offline demo dataset);
- profiles: GPU costs and throughputs per bucket;
- solver: Mélange ILP, exact solver, single-GPU baselines, savings tables;
- sweep: grid runs over rates x workloads x GPU sets x SLOs (spec: the spec and its checks; engine:
  running it);
- report: figures, tables, the sweep's index page; pages: notebooks -> shared HTML; run: one
  papermill run into outputs/; hub: Hugging Face access; cli: the command.

Importing the package loads numpy and pandas only. The other modules are not imported here: import
them directly (``from melange_nb.sweep import run_sweep``); they load papermill, matplotlib, PuLP or
datasets only when a function needs them.
"""
from .errors import DatasetError, InputError, MelangeError
from .profiles import GpuProfile, load_gpus, read_melange_config
from .solver import Comparison, Constraints, SolveResult, compare, savings_table, solve
from .workload import blend, build_workload, histogram, read_trace, read_workload, write_workload

__all__ = ["Comparison", "Constraints", "DatasetError", "GpuProfile", "InputError", "MelangeError",
           "SolveResult", "blend", "build_workload", "compare", "histogram", "load_gpus",
           "read_melange_config", "read_trace", "read_workload", "savings_table", "solve",
           "write_workload"]
