"""Calibration of the verdict's statistics by simulation: false "meets", the compare gate, coverage.

    .venv/bin/python bench/verdict_calibration.py [--sims N] [--seed S]

Every number comes from the project's own code on simulated eval sets: the verdict's state
function (`assess`), the compare gate (`advisor.compare.regression_gate`), the intervals
(`advisor.stats.metric_interval`) and the items-needed power calculation
(`advisor.stats.total_items_needed`). Threshold 0.80, confidence 0.95 (one-sided "meets").

Designs:
- ungrouped: 300 independent items;
- grouped: 60 groups x 5 items with intra-group correlation 0.3, beta-binomial: each
  group's rate ~ Beta(a, b) with mean p and a + b = 1/0.3 - 1, so the correlation of two
  items' outcomes in one group is exactly 0.3 on the 0/1 scale.

Unchanged levers for the compare gate (the same lever run twice on the same items, e.g. a
sampled model or a rebuilt index), latent-normal: item i of run r is right when
u_i + b_rg + e_ri > cut, u_i ~ N(0, 0.4) the item's difficulty, shared by both runs;
b_rg ~ N(0, 0.3) a shift of the whole group in run r (grouped design only; it makes the
intra-group correlation of a run's latent scores 0.3); e_ri item noise (variance 0.3, or
0.6 ungrouped); cut puts 80% right. Five levers are independent of each other.

Column "exact": for the ungrouped verdict and coverage rows and the power row, the same rate with no
Monte-Carlo error — the verdict's state at every count, weighted by the binomial pmf — so a
simulated rate can be told from its sampling noise (Wilson's one-sided error is itself not
exactly 5%: a false "fails" at 300 items and truth 0.80 has chance 0.0508).

Simulations: 2,000 per scenario by default (about 2 minutes of one core), so the
Monte-Carlo SE of a 5% rate is 0.005. Bounds: a rate that must not exceed its nominal level (false "meets", gate failures) passes
when rate <= nominal + 3 * sqrt(nominal (1 - nominal) / N), the Monte-Carlo allowance for a
procedure exactly at its level; coverage passes when >= 0.95 - 3 * SE; power at the
items-needed size when >= 0.80 - 3 * SE. Three standard errors, not two: nineteen rows are
checked, and a procedure exactly at its level would FAIL a row by chance 2.3% of the time
with 2 SE, 0.13% with 3. Rows marked "info" have no bound (power above the threshold; the
group-blind, unadjusted gate — exact McNemar per lever at 5%, as before issue 28 but
for its bootstrap bound — shown so the scenarios visibly bite). Exit 1 when a
bounded row fails.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.compare import regression_gate  # noqa: E402
from advisor.stats import metric_interval, one_sided_bounds, paired_test, total_items_needed  # noqa: E402
from advisor.verdict import assess  # noqa: E402

THRESHOLD, CONFIDENCE, ALPHA = 0.80, 0.95, 0.05
N_ITEMS, N_GROUPS, GROUP_SIZE, ICC = 300, 60, 5, 0.3
TRUTHS = (THRESHOLD - 0.02, THRESHOLD, THRESHOLD + 0.02)
# Latent-normal variances for the compare scenarios (see the module docstring).
V_ITEM, V_GROUP_RUN, V_NOISE = 0.4, 0.3, 0.3
CUT = -0.8416212335729143  # P(N(0, 1) > CUT) = 0.80


@dataclass
class Row:
    scenario: str
    hits: int
    sims: int
    kind: str  # "max" (rate <= bound), "min" (rate >= bound) or "info"
    nominal: float | None = None
    exact: float | None = None  # the same rate summed over every count (ungrouped binary rows only)

    @property
    def rate(self) -> float:
        return self.hits / self.sims

    @property
    def mc_se(self) -> float:
        return math.sqrt(self.rate * (1 - self.rate) / self.sims)

    @property
    def bound(self) -> float | None:
        if self.kind == "info" or self.nominal is None:
            return None
        allowance = 3 * math.sqrt(self.nominal * (1 - self.nominal) / self.sims)
        return self.nominal + allowance if self.kind == "max" else self.nominal - allowance

    @property
    def passed(self) -> bool | None:
        b = self.bound
        if b is None:
            return None
        return self.rate <= b if self.kind == "max" else self.rate >= b


def grouped_labels() -> np.ndarray:
    return np.repeat(np.arange(N_GROUPS), GROUP_SIZE)


def draw_eval_set(rng: np.random.Generator, truth: float, grouped: bool) -> np.ndarray:
    """Per-item 0/1 scores of one simulated eval set, shape (300,)."""
    if not grouped:
        return (rng.random(N_ITEMS) < truth).astype(float)
    total = 1 / ICC - 1  # a + b of the beta: intra-group correlation 1 / (a + b + 1) = ICC
    rates = rng.beta(truth * total, (1 - truth) * total, size=N_GROUPS)
    return (rng.random((N_GROUPS, GROUP_SIZE)) < rates[:, None]).astype(float).ravel()


def draw_unchanged_pair(rng: np.random.Generator, grouped: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two runs of one unchanged lever on the same 300 items (0/1 scores), item difficulty shared."""
    groups = grouped_labels()
    u = rng.normal(0, math.sqrt(V_ITEM), N_ITEMS)
    runs = []
    for _ in range(2):
        if grouped:
            z = u + rng.normal(0, math.sqrt(V_GROUP_RUN), N_GROUPS)[groups] + rng.normal(0, math.sqrt(V_NOISE), N_ITEMS)
        else:
            z = u + rng.normal(0, math.sqrt(V_GROUP_RUN + V_NOISE), N_ITEMS)
        runs.append((z > CUT).astype(float))
    return runs[0], runs[1]


def _exact_state_rates(truth: float) -> dict[str, float]:
    """Chance of each state for 300 independent items: the verdict's own state at every count
    k = 0..300, weighted by the Binomial(300, truth) pmf (no Monte-Carlo error)."""
    from scipy import stats as sps

    rates: dict[str, float] = {}
    for k in range(N_ITEMS + 1):
        state = _state_at_count(k)
        rates[state] = rates.get(state, 0.0) + float(sps.binom.pmf(k, N_ITEMS, truth))
    return rates


def _exact_coverage(truth: float) -> float:
    """Chance that the two-sided 95% interval of 300 independent items covers `truth`, summed over counts."""
    from scipy import stats as sps

    return float(sum(sps.binom.pmf(k, N_ITEMS, truth) for k in range(N_ITEMS + 1)
                     if (iv := metric_interval(np.r_[np.ones(k), np.zeros(N_ITEMS - k)], 0.95)).low <= truth <= iv.high))


@cache
def _state_at_count(k: int) -> str:
    x = np.r_[np.ones(k), np.zeros(N_ITEMS - k)]
    return str(assess(x, THRESHOLD, CONFIDENCE, "lower_bound", seed=0).state)


def verdict_rows(rng: np.random.Generator, sims: int) -> list[Row]:
    """False "meets" (truth at or below the threshold), power (above), false "fails", coverage."""
    rows: list[Row] = []
    for grouped in (False, True):
        design = f"grouped {N_GROUPS}x{GROUP_SIZE}, ICC {ICC}" if grouped else f"ungrouped {N_ITEMS}"
        groups = grouped_labels() if grouped else None
        for truth in TRUTHS:
            meets = fails = covered = 0
            for _ in range(sims):
                x = draw_eval_set(rng, truth, grouped)
                state = assess(x, THRESHOLD, CONFIDENCE, "lower_bound", groups=groups, seed=0).state
                meets += state == "meets"
                fails += state == "fails"
                iv = metric_interval(x, 0.95, groups=groups, seed=0)
                covered += iv.low <= truth <= iv.high
            where = "below" if truth < THRESHOLD else "at" if truth == THRESHOLD else "above"
            label = f"verdict, {design}, truth {truth:.2f} ({where})"
            exact = {} if grouped else _exact_state_rates(truth)
            if truth <= THRESHOLD:
                rows.append(Row(f"{label}: 'meets' claimed", meets, sims, "max", ALPHA, exact.get("meets")))
            else:
                rows.append(Row(f"{label}: 'meets' claimed (power)", meets, sims, "info", None, exact.get("meets")))
            if truth >= THRESHOLD:
                rows.append(Row(f"{label}: 'fails' claimed", fails, sims, "max", ALPHA, exact.get("fails", 0.0)
                                if exact else None))
            rows.append(Row(f"coverage of the 95% interval, {design}, truth {truth:.2f}", covered, sims, "min", 0.95,
                            None if grouped else _exact_coverage(truth)))
    return rows


def gate_rows(rng: np.random.Generator, sims: int) -> list[Row]:
    """How often the compare gate fails an unchanged run, 1 and 5 levers, ungrouped and grouped."""
    rows: list[Row] = []
    for grouped in (False, True):
        design = f"grouped {N_GROUPS}x{GROUP_SIZE}" if grouped else f"ungrouped {N_ITEMS}"
        groups = grouped_labels() if grouped else None
        for n_levers in (1, 5):
            fails = old = 0
            for _ in range(sims):
                pairs = {f"lever{k}": draw_unchanged_pair(rng, grouped) for k in range(n_levers)}
                a = {k: v[0] for k, v in pairs.items()}
                b = {k: v[1] for k, v in pairs.items()}
                fails += any(regression_gate(a, b, CONFIDENCE, groups=groups).values())
                # A group-blind, unadjusted gate like the one before issue 28 (which used a one-sided
                # bootstrap bound): exact McNemar ignoring groups, each lever at 5%.
                old += any(paired_test(b[k], a[k])[1] < ALPHA for k in a)
            label = f"compare gate, {design}, {n_levers} unchanged lever{'s' if n_levers > 1 else ''}"
            rows.append(Row(f"{label}: gate fails", fails, sims, "max", ALPHA))
            rows.append(Row(f"{label}: McNemar, no groups, no Holm, fails", old, sims, "info"))
    return rows


def power_row(rng: np.random.Generator, sims: int) -> Row:
    """Power of the verdict's rule at the items-needed size for 249/300 against 0.80 (truth 0.83)."""
    n = total_items_needed(249 / 300, THRESHOLD, CONFIDENCE)
    assert n is not None
    successes = rng.binomial(n, 0.83, size=sims)
    lower = {int(k): one_sided_bounds(np.r_[np.ones(k), np.zeros(n - k)], CONFIDENCE)[0] for k in np.unique(successes)}
    hits = int(sum(lower[int(k)] >= THRESHOLD for k in successes))
    from scipy import stats as sps

    counts = np.arange(n + 1)
    meets = np.array([one_sided_bounds(np.r_[np.ones(k), np.zeros(n - k)], CONFIDENCE)[0] >= THRESHOLD
                      for k in counts])
    exact = float(sps.binom.pmf(counts[meets], n, 0.83).sum())
    return Row(f"power of 'meets' at total_items_needed = {n} (249/300 vs 0.80, truth 0.83)", hits, sims, "min", 0.80,
               exact)


def run(sims: int = 2000, seed: int = 0) -> list[Row]:
    """Every scenario at `sims` simulated eval sets each; independent seeded streams per part."""
    verdict_rng, gate_rng, power_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    gc.freeze()  # statsmodels' Holm calls gc.collect() per family: freezing what is loaded makes that cheap
    try:
        return verdict_rows(verdict_rng, sims) + gate_rows(gate_rng, sims) + [power_row(power_rng, max(sims, 2000))]
    finally:
        gc.unfreeze()


def format_table(rows: list[Row]) -> str:
    width = max(len(r.scenario) for r in rows)
    lines = [f"{'scenario':<{width}}  {'rate':>6}  {'MC SE':>6}  {'exact':>6}  {'bound':>8}  result",
             "-" * (width + 44)]
    for r in rows:
        b = r.bound
        bound = "—" if b is None else f"{'<=' if r.kind == 'max' else '>='} {b:.3f}"
        result = "info" if r.passed is None else "PASS" if r.passed else "FAIL"
        exact = "—" if r.exact is None else f"{r.exact:.4f}"
        lines.append(f"{r.scenario:<{width}}  {r.rate:6.3f}  {r.mc_se:6.3f}  {exact:>6}  {bound:>8}  {result}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulated eval sets per scenario (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every simulation (default 0)")
    args = parser.parse_args(argv)
    if args.sims < 1:
        parser.error("--sims must be at least 1")
    start = time.perf_counter()
    rows = run(args.sims, args.seed)
    print(format_table(rows))
    failed = [r for r in rows if r.passed is False]
    print(f"\n{args.sims} simulations per scenario, seed {args.seed}, {time.perf_counter() - start:.0f} s; "
          f"bounds: nominal ± 3 Monte-Carlo SE; {len(failed)} of {sum(r.passed is not None for r in rows)} "
          "bounded rows fail")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
