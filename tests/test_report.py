"""Reports give the answer first: headline text, policy styles, workload caveats, clean offline pages, CLI summaries."""
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from melange_nb import compare, load_gpus, read_workload
from melange_nb.config import GPUS_DIR, PROJECT_ROOT, WORKLOADS_DIR
from melange_nb.pages import clean_for_sharing, relative_paths, small_png
from melange_nb.report import (comparison_headline, format_mix, gpu_colour, headline_html, headline_sentence,
                               headline_table, plot_cost_vs_rate, plural, policy_style, rate_table, sweep_headlines,
                               workload_caveat, workload_left_out_share)

GPUS = GPUS_DIR / "llama2-7b-seed.yaml"
ARENA = WORKLOADS_DIR / "arena-seed.csv"


@pytest.fixture(scope="module")
def at_4():
    return compare(read_workload(ARENA), load_gpus(GPUS), 4.0, solvers=("exact", "melange"))


def test_headline_sentence_from_hand_computed_costs(at_4):
    # the seed's Arena distribution at 4 req/s: 1 A10G + 1 A100 = 1.01 + 3.67 = 4.68; A10G-only 5 x 1.01 = 5.05,
    # A100-only 2 x 3.67 = 7.34; savings (5.05 - 4.68) / 5.05 = 7.33%, (7.34 - 4.68) / 7.34 = 36.24%
    expected = ("At 4 req/s: 1×A10G + 1×A100 = $4.68/h, 7.3% below A10G-only ($5.05/h) "
                "and 36.2% below A100-only ($7.34/h)")
    assert comparison_headline(at_4) == expected
    assert headline_sentence(4, {"A10G": 1, "A100": 1}, 4.68, {"A10G": 5.05, "A100": 7.34}) == expected
    assert headline_sentence(2, {"A10G": 3, "A100": 0}, 3.03, {"A10G": 3.03}) == \
        "At 2 req/s: 3×A10G = $3.03/h, the same as A10G-only ($3.03/h)"
    assert headline_sentence(1.5, {"A": 1}, 2.0, {"A": 2.0, "B": None, "C": 1.0}) == \
        "At 1.5 req/s: 1×A = $2.00/h, the same as A-only ($2.00/h), B-only has no plan and 100.0% above C-only ($1.00/h)"
    assert headline_sentence(4, {"A": 0}, None, {"A": 1.0}, status="infeasible", message="input 0-25 x output 0-25") == \
        "At 4 req/s: no plan (infeasible: input 0-25 x output 0-25)"
    assert "not proven optimal" in headline_sentence(4, {"A": 1}, 1.0, {}, status="time_limit")


def test_headline_table_is_rounded_for_people(at_4):
    table = headline_table(at_4)
    assert list(table.columns) == ["GPUs", "$/h", "the mix saves"]
    assert table.loc["exact mix (reference)"].tolist() == ["1×A10G + 1×A100", "$4.68/h", "—"]
    assert table.loc["A10G-only"].tolist() == ["5×A10G", "$5.05/h", "7.3%"]
    assert table.loc["A100-only"].tolist() == ["2×A100", "$7.34/h", "36.2%"]
    assert plural(1, "GPU") == "1 GPU" and plural(2, "GPU") == "2 GPUs" and plural(0, "GPU") == "0 GPUs"
    assert format_mix({"A10G": 0, "A100": 2}) == "2×A100" and format_mix({"A10G": 0}) == "no GPUs"


def test_dropped_and_clipped_requests_are_in_the_headline_with_a_warning_above_one_percent():
    # the Azure conversation trace: 2,770 of 19,366 requests (14.3%) have input or output >= 2000 tokens
    azure = {"requests": 19366, "dropped": 2770, "beyond_last_edge": 2770, "below_first_edge": 0,
             "overflow_policy": "drop", "input_edges": [0, 25, 2000], "output_edges": [0, 25, 2000]}
    assert workload_caveat(azure) == "14.3% of 19,366 requests dropped (input >= 2000 or output >= 2000 tokens)"
    page = headline_html("At 4 req/s: ...", caveat=workload_caveat(azure), left_out_share=workload_left_out_share(azure))
    assert "mnb-warning" in page and "14.3% of 19,366 requests dropped" in page
    clipped = {**azure, "dropped": 0, "overflow_policy": "clip", "beyond_last_edge": 150}
    assert workload_caveat(clipped).startswith("0.8% of 19,366 requests clipped into the edge buckets")
    quiet = headline_html("x", caveat=workload_caveat(clipped), left_out_share=workload_left_out_share(clipped))
    assert "mnb-warning" not in quiet and "0.8% of 19,366 requests clipped" in quiet   # said, without alarm
    assert workload_caveat({**azure, "dropped": 0, "beyond_last_edge": 0}) == "" and workload_caveat({}) == ""


def test_one_fixed_style_per_policy():
    exact, melange, a10g = policy_style("exact"), policy_style("melange"), policy_style("single:A10G")
    assert exact == policy_style("exact") and a10g["color"] == gpu_colour("A10G") == "#1f77b4"
    assert len({exact["color"], melange["color"], a10g["color"], policy_style("single:A100")["color"]}) == 4
    # exact is drawn wide and under Mélange, so a thinner dashed Mélange line on top leaves both visible
    assert exact["linewidth"] > melange["linewidth"] and exact["zorder"] < melange["zorder"]
    assert melange["linestyle"] != exact["linestyle"] and melange["marker"] != exact["marker"]
    # unknown GPU names still get a stable colour, never the mix solvers' colours
    assert gpu_colour("MI300X") == gpu_colour("MI300X") and gpu_colour("MI300X") not in (exact["color"], melange["color"])


def _results(rates=(2.0, 4.0, 8.0), gpu_names=None) -> pd.DataFrame:
    from melange_nb.profiles import select_gpus

    w, g = read_workload(ARENA), select_gpus(load_gpus(GPUS), gpu_names or [])
    rows = []
    for rate in rates:
        c = compare(w, g, rate, solvers=("exact", "melange"))
        table = c.savings()
        for policy, r in c.results.items():
            rows.append({"point": f"p{rate:g}", "workload": "arena", "gpu_set": "seed", "slice_factor": 1, "rate": rate,
                         "reference": "exact", "policy": policy, **{f"n_{k}": v for k, v in r.counts.items()},
                         "cost_per_hour": r.cost, "savings_pct": table.loc[policy, "savings_pct"], "status": r.status})
    return pd.DataFrame(rows)


def test_sweep_headline_and_rate_table():
    results = _results()
    [sentence] = sweep_headlines(results).values()
    assert sentence == ("arena on seed: over 2–8 req/s (3 rates solved) the exact mix costs 0.0–17.3% less than the "
                        "cheapest single GPU type. At 8 req/s: 1×A10G + 2×A100 = $8.35/h, 17.3% below A10G-only "
                        "($10.10/h) and 24.2% below A100-only ($11.01/h).")
    table = rate_table(results)
    assert list(table.columns) == ["workload", "GPU set", "rate (req/s)", "mix", "$/h", "saves vs A10G-only",
                                   "saves vs A100-only"]
    assert table.iloc[1, 2:].tolist() == ["4", "1×A10G + 1×A100", "$4.68/h", "7.3%", "36.2%"]


def test_mix_changes_lists_changes_of_gpu_types_and_says_what_changes():
    from melange_nb.report import mix_changes, savings_summary

    results = _results(rates=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16))
    table = mix_changes(results)
    assert table["from rate (req/s)"].tolist() == ["1", "3", "4", "10", "12"]
    assert table["what changes"].tolist() == ["first rate solved", "adds A100; drops A10G", "adds A10G", "drops A10G",
                                              "adds A10G"]
    assert table["mix"].tolist()[:3] == ["2×A10G", "1×A100", "1×A10G + 1×A100"]
    assert table.loc[0, "then only the counts change at (req/s)"] == "2"
    assert table.loc[2, "then only the counts change at (req/s)"] == "5, 6, 8"
    # one header per axis in every sweep table: "GPU set", "SLO", "slice factor", never the column names
    assert "slice factor" not in table and "SLO" not in table           # one value in the whole sweep: no column
    with_slo = pd.concat([results.assign(slo="mean TPOT <= 40 ms"), results.assign(slo="mean TPOT <= 120 ms")])
    for t in (mix_changes(with_slo), savings_summary(with_slo)):
        assert {"GPU set", "SLO"} <= set(t.columns) and not {"gpu_set", "slo", "slice_factor"} & set(t.columns)


def test_sweep_headline_in_words_when_the_mix_never_saves():
    """One GPU type at every rate: a sentence, not "0.0–0.0% less"."""
    [sentence] = sweep_headlines(_results(gpu_names=["A100"])).values()
    assert "0.0–0.0%" not in sentence and "0.0%" not in sentence
    assert sentence.startswith("arena on seed: over 2–8 req/s (3 rates solved) the exact mix is A100 alone at every "
                               "rate: it costs what A100-only costs, and mixing GPU types saves nothing here. At 2 req/s: 1×A100 = $3.67/h")


def test_routing_heatmaps_leave_buckets_without_requests_blank(seed_gpus):
    from melange_nb.report import plot_routing

    w = read_workload(ARENA) * 0
    w.iloc[0, 1], w.iloc[3, 2] = 0.5, 0.5               # two buckets with requests, 34 without
    fig = plot_routing(compare(w, seed_gpus, 4.0, solvers=("exact",)).mix, w)
    for ax in fig.axes:
        if not ax.texts:
            continue                                      # a colour bar
        shown = [t.get_text() for t in ax.texts]
        assert sum(1 for t in shown if t) == 2 and all(t.endswith("%") for t in shown if t), shown
        assert int(ax.collections[0].get_array().mask.sum()) == 34 and "blank: no requests" in ax.get_title()


def test_cost_plot_draws_only_the_rates_solved():
    fig = plot_cost_vs_rate(_results(rates=(2.0, 4.0, 32.0)))
    ax = fig.axes[0]
    for line in ax.get_lines():
        assert list(line.get_xdata()) == [2.0, 4.0, 32.0]        # no step vertices between the rates solved
    labels = {line.get_label(): line for line in ax.get_lines()}
    assert set(labels) == {"exact mix", "Mélange ILP", "A10G-only", "A100-only"}
    assert labels["exact mix"].get_color() == policy_style("exact")["color"]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "32"]


def test_small_png_keeps_the_picture_and_saves_bytes():
    import matplotlib.pyplot as plt
    from PIL import Image

    fig = plot_cost_vs_rate(_results())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    small = small_png(buf.getvalue())
    assert len(small) < 0.6 * len(buf.getvalue())
    assert Image.open(io.BytesIO(small)).size == Image.open(io.BytesIO(buf.getvalue())).size


def test_shared_notebook_loses_progress_bars_and_absolute_paths(tmp_path):
    folder = tmp_path / "sweep" / ".arena__rate4.tmp"
    source = (f'workload = "{tmp_path}/sweep/workloads/w/workload.csv"\n'
              f'gpus = "{PROJECT_ROOT}/params/gpus/llama2-7b-seed.yaml"\n'
              f'output_dir = "{folder}"\nother = "/somewhere/else/data.csv"\n')
    assert relative_paths(source, folder) == ('workload = "../workloads/w/workload.csv"\n'
                                              'gpus = "params/gpus/llama2-7b-seed.yaml"\n'
                                              'output_dir = "."\nother = "data.csv"\n')
    cell = new_code_cell(source, outputs=[
        new_output("stream", name="stderr", text="tokenizing:  42%|####      | 42/100 [00:01<00:01]\r"),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                         "text/plain": "HBox(children=(HTML(value=''), FloatProgress(value=0.0)))"}),
        new_output("stream", name="stderr", text="UserWarning: something real\n"),
        new_output("stream", name="stdout", text="kept\n")])
    nb = clean_for_sharing(new_notebook(cells=[cell], metadata={"widgets": {}}), folder)
    outputs = nb.cells[0].outputs
    assert [o.get("text") for o in outputs] == ["UserWarning: something real\n", "kept\n"]   # real warnings stay visible
    assert "widgets" not in nb.metadata and str(tmp_path) not in nb.cells[0].source


def cli(*args):
    return subprocess.run([sys.executable, "-m", "melange_nb.cli", *map(str, args)], capture_output=True, text=True)


def test_version_text_summary_and_one_line_usage_errors():
    from importlib import metadata

    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"melange-nb {metadata.version('melange-nb')}"
    out = cli("solve", "--workload", ARENA, "--gpus", GPUS, "--rate", 4, "--solver", "exact", "--format", "text")
    assert out.returncode == 0 and out.stdout == ("At 4 req/s: 1×A10G + 1×A100 = $4.68/h, 7.3% below A10G-only "
                                                  "($5.05/h) and 36.2% below A100-only ($7.34/h). The Mélange ILP (slice factor 1) finds "
                                                      "the same mix at the same cost.\n")
    assert json.loads(cli("solve", "--workload", ARENA, "--gpus", GPUS, "--rate", 4).stdout)["cost"] == 4.68  # piped: JSON
    out = cli("solve", "--rate", "four")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "melange-nb: error: argument --rate: invalid float value: 'four' (see melange-nb solve --help)\n"


def test_every_option_says_its_default_or_format():
    from melange_nb.cli import _parser

    def walk(parser, name):
        for action in parser._actions:
            if action.dest in ("help", "version") or action.__class__.__name__ == "_SubParsersAction":
                continue
            yield name, action
        for sub in (a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"):
            for sub_name, child in sub.choices.items():
                yield from walk(child, f"{name} {sub_name}")

    missing = []
    for name, action in walk(_parser(), "melange-nb"):
        text = action.help or ""
        if name.startswith("melange-nb profile"):
            continue          # h-predict's subcommands document their own options
        if not ("default" in text or "required" in text or action.required):
            missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        if action.option_strings and action.nargs != 0 and not (action.metavar or action.choices):
            missing.append(f"{name} {'/'.join(action.option_strings)}: no format (metavar or choices)")
    assert not missing, missing


def test_index_page_escapes_what_it_did_not_write(tmp_path):
    from melange_nb.report import write_index

    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    csv = tmp_path / "w.csv"
    csv.write_text(f"# {hostile}\n" + (WORKLOADS_DIR / "arena-seed.csv").read_text())
    (tmp_path / "failed" / "w__g__sf1__rate1").mkdir(parents=True)
    (tmp_path / "failed" / "w__g__sf1__rate1" / "traceback.txt").write_text("x")
    manifest = {"spec": {"name": "n", "solvers": ["exact"], "workloads": {"w": str(csv)}},
                "points": {"w__g__sf1__rate1": {"workload": "w", "gpus": f"g{hostile}", "slo": None, "slice_factor": 1,
                                                "rate": 1.0, "status": "failed", "error": f"boom {hostile}"}}}
    html = write_index(tmp_path, pd.DataFrame(), manifest).read_text()
    assert "<script>" not in html and "<img src=x" not in html          # text, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and html.count("&lt;script&gt;") == 3
    assert '<a href="failed/w__g__sf1__rate1/traceback.txt">traceback</a>' in html
    assert "0 of 1 point done, 1 failed" in html and "No completed points" in html


def test_length_plot_titles_carry_thousands_separators():
    import matplotlib.pyplot as plt

    from melange_nb.report import plot_lengths

    requests = pd.DataFrame({"input_tokens": [10] * 1200 + [5000] * 1100, "output_tokens": [20] * 2300})
    fig = plot_lengths(requests, label="t")
    assert "(1,100 of 2,300 requests ≥ 4,096 tokens not shown)" in fig.axes[0].get_title()
    assert "(0 of 2,300 requests ≥ 2,048 tokens not shown)" in fig.axes[1].get_title()
    plt.close(fig)
