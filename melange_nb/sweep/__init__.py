"""Sweeps: a spec (`spec`: the YAML schema, its loading and checks, the grid of points) run by the
engine (`engine`: solving every point, rendering the chosen ones, the results table, resume).

The public API is re-exported here: ``from melange_nb.sweep import load_spec, run_sweep``.
"""
from .engine import (SUMMARY_NOTEBOOK, SweepInterrupted, SweepLocked, collect_results, points_to_render, read_sweep,
                     run_sweep, savings_vs_published)
from .spec import (NO_CONSTRAINTS, PREDICT_OPTIONS, RENDER_MODES, SPEC_KEYS, Point, check_inputs, grid, load_spec,
                   predict_gpu_sets, profile_file, render_choice, slo_label)

__all__ = ["SUMMARY_NOTEBOOK", "SweepInterrupted", "SweepLocked", "collect_results", "points_to_render", "read_sweep",
           "run_sweep",
           "savings_vs_published", "NO_CONSTRAINTS", "PREDICT_OPTIONS", "RENDER_MODES", "SPEC_KEYS", "Point",
           "check_inputs", "grid", "load_spec", "predict_gpu_sets", "profile_file", "render_choice", "slo_label"]
