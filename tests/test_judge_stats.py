"""The judge's statistics on real human grades: PPI++ intervals (advisor.judge.ppi) and Cohen's kappa
(advisor.judge.agreement), against the reference package and the VADER human ratings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from advisor.judge.agreement import agreement, cohen_kappa
from advisor.judge.ppi import ppi_mean

ROOT = Path(__file__).resolve().parents[1]
RATINGS = Path(__file__).parent / "fixtures" / "vader_ratings"
REFERENCE = Path(sys.prefix) / "ppi-reference"  # `make setup` installs ppi-python there, apart (see Makefile)


@cache
def vader_grades(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(human, judge) per text: 1 where people rate it negative (mean rating < 0), and where VADER's
    lexicon does (compound <= -0.05, the package's own threshold for negative)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    rows = [line.split("\t") for line in (RATINGS / f"{name}_GroundTruth.txt").read_text("latin-1").splitlines()
            if line.strip()]
    human = np.array([float(r[1]) < 0 for r in rows], dtype=float)
    judge = np.array([analyzer.polarity_scores(r[2])["compound"] <= -0.05 for r in rows], dtype=float)
    return human, judge


@pytest.mark.parametrize("name", ["tweets", "amazonReviewSnippets"])
def test_ppi_covers_the_human_rate_and_beats_human_grades_alone(name):
    """50 human grades, the lexicon on the rest, 600 draws: the 95% interval covers the rate all the
    people gave at least 93% of the time and is narrower on average than the 50 human grades alone."""
    human, judge = vader_grades(name)
    truth = human.mean()
    rng = np.random.default_rng(7)
    covered, lower_ok, ppi_w, human_w, effective = 0, 0, [], [], []
    draws = 600
    for _ in range(draws):
        order = rng.permutation(len(human))
        graded, rest = order[:50], order[50:]
        est = ppi_mean(human[graded], judge[graded], judge[rest])
        covered += est.ci_low <= truth <= est.ci_high
        lower_ok += est.lower_bound <= truth
        ppi_w.append(est.width)
        human_w.append(est.human_only[1] - est.human_only[0])
        effective.append(est.effective_n)
    print(f"{name}: coverage {covered / draws:.3f}, one-sided {lower_ok / draws:.3f}, width PPI "
          f"{np.mean(ppi_w):.3f} vs human only {np.mean(human_w):.3f}, effective n {np.median(effective):.0f}")
    assert covered / draws >= 0.93
    assert lower_ok / draws >= 0.93
    assert np.mean(ppi_w) < np.mean(human_w)


def test_the_published_interval_undercovers_where_the_judge_nearly_always_agrees():
    """Why the pseudo-counts exist: on tweets (the lexicon agrees with people on 96%) the published
    interval, without them, covers the truth far less than 95% of the time with 50 human grades."""
    human, judge = vader_grades("tweets")
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(600):
        order = rng.permutation(len(human))
        est = ppi_mean(human[order[:50]], judge[order[:50]], judge[order[50:]], small_sample=False)
        hits += est.ci_low <= human.mean() <= est.ci_high
    assert hits / 600 < 0.85


def _reference(cases: list[dict]) -> list[dict]:
    """ppi-python's ppi_mean_ci/pointestimate on each case, run in a process of its own."""
    if not (REFERENCE / "ppi_py").is_dir():
        pytest.fail(f"the PPI reference package is not installed in {REFERENCE}: run `make setup`")
    code = (
        "import json, sys, numpy as np\n"
        "from ppi_py import ppi_mean_ci, ppi_mean_pointestimate\n"
        "out = []\n"
        "for c in json.load(sys.stdin):\n"
        "    y, f, fu = (np.array(c[k], dtype=float) for k in ('y', 'f', 'fu'))\n"
        "    lo, hi = ppi_mean_ci(y, f, fu, alpha=1 - c['confidence'], lam=c['lam'])\n"
        "    point = ppi_mean_pointestimate(y, f, fu, lam=c['lam'])\n"
        "    out.append({'value': float(np.ravel(point)[0]), 'low': float(np.ravel(lo)[0]), 'high': float(np.ravel(hi)[0])})\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REFERENCE)}
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(cases), capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_the_plain_interval_equals_the_reference_package():
    """Without the pseudo-counts, point and interval equal ppi-python's (0.2.3) at 95% (its default is
    90%), power-tuned and at fixed lam 0, 0.5, 1; continuous grades too."""
    rng = np.random.default_rng(3)
    human, judge = vader_grades("amazonReviewSnippets")
    cases = []
    for lam in (None, 0.0, 0.5, 1.0):
        order = rng.permutation(len(human))
        y, f, fu = human[order[:60]], judge[order[:60]], judge[order[60:1060]]
        cases.append({"y": y.tolist(), "f": f.tolist(), "fu": fu.tolist(), "lam": lam, "confidence": 0.95})
    y = rng.normal(0.3, 1, 80)
    f, fu = y + rng.normal(0, 0.5, 80), rng.normal(0.5, 1.1, 500)
    cases.append({"y": y.tolist(), "f": f.tolist(), "fu": fu.tolist(), "lam": None, "confidence": 0.9})
    ref = _reference(cases)
    for case, want in zip(cases, ref):
        got = ppi_mean(np.array(case["y"]), np.array(case["f"]), np.array(case["fu"]), lam=case["lam"],
                       confidence=case["confidence"], small_sample=False)
        assert got.value == pytest.approx(want["value"], abs=1e-9)
        assert (got.ci_low, got.ci_high) == (pytest.approx(want["low"], abs=1e-9), pytest.approx(want["high"], abs=1e-9))


def test_lam_zero_is_the_human_mean_and_effective_n_grows_with_agreement():
    human, judge = vader_grades("tweets")
    y, f, fu = human[:50], judge[:50], judge[50:]
    alone = ppi_mean(y, f, fu, lam=0.0, small_sample=False)
    assert alone.value == pytest.approx(y.mean())
    assert alone.effective_n == pytest.approx(50)
    tuned = ppi_mean(y, f, fu)
    assert 0 < tuned.lam <= 1 and tuned.effective_n > 50
    assert tuned.lower_bound > tuned.ci_low and tuned.upper_bound < tuned.ci_high  # one-sided at 95%
    with pytest.raises(ValueError, match="at least 2 human grades"):
        ppi_mean(y[:1], f[:1], fu)
    with pytest.raises(ValueError, match="one length"):
        ppi_mean(y, f[:10], fu)


def test_kappa_equals_scikit_learn_and_the_interval_says_trust_or_refuse():
    from sklearn.metrics import cohen_kappa_score

    human, judge = vader_grades("amazonReviewSnippets")
    for lo, hi in ((0, 50), (100, 300), (1000, 1040)):
        assert cohen_kappa(human[lo:hi], judge[lo:hi]) == pytest.approx(cohen_kappa_score(human[lo:hi], judge[lo:hi]))
    good_h, good_j = vader_grades("tweets")
    trusted = agreement(good_h[:400], good_j[:400], min_kappa=0.6)
    assert trusted.state == "trusted" and trusted.kappa_low >= 0.6 and trusted.more_grades is None
    assert trusted.raw > trusted.constant_share  # agreement beyond always giving the commoner grade
    refused = agreement(human[:400], judge[:400], min_kappa=0.6)  # the lexicon misses most negative reviews
    assert refused.state == "refused" and refused.kappa_high < 0.6
    assert refused.tpr is not None and refused.tpr < 0.5 and refused.fpr is not None and refused.fpr < 0.2
    unsettled = agreement(human[:30], judge[:30], min_kappa=0.35)
    assert unsettled.kappa_low < 0.35 <= unsettled.kappa_high or unsettled.kappa_low <= 0.35 < unsettled.kappa_high
    assert unsettled.state == "unsettled" and unsettled.more_grades and unsettled.more_grades > 0


def test_kappa_edge_cases_and_bad_grades():
    assert cohen_kappa(np.array([1, 1, 1]), np.array([1, 1, 1])) == 1.0
    assert cohen_kappa(np.array([1, 1, 1]), np.array([1, 0, 1])) == pytest.approx(0.0)
    always = agreement([1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1])
    assert always.kappa == pytest.approx(0.0) and always.raw == pytest.approx(4 / 6)  # raw agreement flatters it
    assert always.fpr == 1.0 and always.tpr == 1.0
    with pytest.raises(ValueError, match="0 \\(fail\\) or 1"):
        agreement([1, 2], [1, 0])
    with pytest.raises(ValueError, match="at least 2"):
        agreement([1], [1])
