"""How many measured buckets it takes to predict the rest: the seed's measured A100 Llama-2-7B matrix
against aiconfigurator's a100_sxm prediction for Llama-2-7B (params/gpus/llama2-7b-a100-predicted-tpot*.yaml).

Usage: python bench/calibrate_table.py [TRIALS] (default 200)
Prints: predicted/measured ratios per SLO (which SLO fits the seed best), the full-data fit with its
leave-one-out error per SLO, then for k = 1..24 measured buckets chosen at random (TRIALS times)
the relative error of calibrated predictions on the unmeasured buckets, and the share within 15%.
"""
import math
import sys

from melange_nb.config import GPUS_DIR
from melange_nb.profiles import load_gpus
from melange_nb.profiles.calibrate import calibration_curve, compare_profiles, fit_correction

SLOS = (40, 80, 120)


def main(trials: int) -> None:
    seed = load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")
    preds = {t: load_gpus(GPUS_DIR / f"llama2-7b-a100-predicted-tpot{t}.yaml") for t in SLOS}
    print("predicted (aiconfigurator-core, vllm, a100_sxm, Llama-2-7B config) / measured (seed A100), per SLO:")
    fits = {}
    for t, pred in preds.items():
        c = compare_profiles(pred, seed, pairs={"A100": "A100"})[0]
        coef, stats = fit_correction(pred["A100"].tputs, seed["A100"].tputs)
        print(f"  mean TPOT <= {t:>3} ms: median ratio {c.median:.2f}, worst {c.worst:.2f} at {c.worst_bucket}; "
              f"fit on all 36 buckets: leave-one-out error median {stats['loo_median_error']:.1%}, "
              f"max {stats['loo_max_error']:.0%}")
        fits[t] = abs(math.log(c.median))
    t = min(fits, key=fits.get)
    print(f"closest median ratio to 1: TPOT {t} ms; calibration curve for it ({trials} random draws per k):")
    curve = calibration_curve(preds[t]["A100"].tputs, seed["A100"].tputs, sizes=(1, 2, 3, 4, 6, 8, 12, 16, 24),
                              trials=trials)
    print(curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    hit = curve[curve["median_error"] <= 0.15]
    print(f"median error <= 15% from k = {int(hit['measured'].iloc[0]) if len(hit) else 'never'} measured buckets "
          f"(of 36); every unmeasured bucket within 15% in {curve['all_within'].max():.1%} of draws at best")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
