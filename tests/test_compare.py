"""Paired comparisons (:mod:`actionlab.evaluate.compare`) against scipy and against simulation: exact McNemar
against the binomial test, the t critical values against ``scipy.stats.t``, bootstrap intervals that cover the
true difference at about their nominal rate, and the issue's acceptance cases."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from actionlab.evaluate.compare import (
    _resampled_means,
    compare_predictions,
    format_p,
    mcnemar_exact,
    paired_bootstrap,
    paired_seed_comparison,
    seed_interval,
    sign_flip_p,
    t_critical,
)

stats = pytest.importorskip("scipy.stats")


def _runs(n: int, b_only: int, a_only: int, both: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two runs' predictions on ``n`` videos of 2 classes: ``b_only`` right only in B, ``a_only`` right
    only in A, ``both`` right in both, the rest wrong in both."""
    labels = np.arange(n) % 2
    wrong = 1 - labels
    a, b = wrong.copy(), wrong.copy()
    s = slice(0, b_only)
    b[s] = labels[s]
    s = slice(b_only, b_only + a_only)
    a[s] = labels[s]
    s = slice(b_only + a_only, b_only + a_only + both)
    a[s], b[s] = labels[s], labels[s]
    return labels, a, b


# ----------------------------------------------------------------------------------- acceptance


def test_three_videos_of_280_are_not_a_difference() -> None:
    for b_only, a_only in ((3, 0), (2, 1), (0, 3)):
        labels, a, b = _runs(280, b_only, a_only, 200)
        c = compare_predictions(labels, a, b, ["x", "y"])
        assert c.mcnemar_p > 0.05
        assert c.ci95[0] <= 0.0 <= c.ci95[1]
        assert not c.clear and "not clearly" in c.verdict
        assert (c.b_right_a_wrong, c.a_right_b_wrong) == (b_only, a_only)


def test_forty_one_way_and_five_the_other_is_a_difference() -> None:
    labels, a, b = _runs(280, 40, 5, 180)
    c = compare_predictions(labels, a, b, ["x", "y"], names=("base", "new"))
    assert c.mcnemar_p < 0.001 and c.ci95[0] > 0 and c.clear
    assert c.difference == pytest.approx(35 / 280)
    assert c.verdict.startswith("new gets 40 videos right that base misses and base gets 5 that new misses")
    assert "p < 0.001" in c.verdict and "new is clearly better than base" in c.verdict
    swapped = compare_predictions(labels, b, a, ["x", "y"])
    assert swapped.difference == pytest.approx(-c.difference) and "clearly worse" in swapped.verdict
    assert swapped.mcnemar_p == pytest.approx(c.mcnemar_p)


# ----------------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize("b_only,a_only", [(0, 0), (1, 0), (0, 1), (3, 0), (14, 5), (5, 14), (10, 10), (7, 8),
                                           (40, 5), (0, 25), (120, 95), (1000, 900), (6000, 6150)])
def test_mcnemar_is_scipys_exact_binomial_test(b_only: int, a_only: int) -> None:
    n = b_only + a_only
    expected = 1.0 if n == 0 else stats.binomtest(b_only, n, 0.5).pvalue
    assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_mcnemar_on_random_counts_and_the_issue_example() -> None:
    rng = np.random.default_rng(1)
    for b_only, a_only in rng.integers(0, 300, size=(40, 2)):
        n = int(b_only + a_only)
        expected = stats.binomtest(int(b_only), n, 0.5).pvalue if n else 1.0
        assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-8)
    assert format_p(mcnemar_exact(14, 5)) == "p = 0.06"  # the issue's sentence
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 3)


def test_sign_flip_with_one_seed_is_mcnemar_and_handles_several_seeds() -> None:
    rng = np.random.default_rng(2)
    d = rng.choice([-1, 0, 1], size=300, p=[0.1, 0.75, 0.15])
    assert sign_flip_p(d) == pytest.approx(mcnemar_exact(int((d > 0).sum()), int((d < 0).sum())), rel=1e-9)
    # three seeds: a brute-force enumeration of all sign flips of a few videos agrees
    small = np.array([3, -1, 2, 0, 1, 2, -2])
    nonzero = small[small != 0]
    flips = np.array(np.meshgrid(*[[-1, 1]] * len(nonzero))).reshape(len(nonzero), -1).T
    totals = np.abs(flips @ np.abs(nonzero))
    assert sign_flip_p(small) == pytest.approx(np.mean(totals >= abs(small.sum())))
    assert sign_flip_p(np.zeros(5, int)) == 1.0


# ----------------------------------------------------------------------------------- bootstrap


def test_bootstrap_intervals_cover_the_true_difference_at_about_their_rate() -> None:
    """Pairs of runs drawn from a known joint law (B right alone 12%, A alone 6%): the true difference is 0.06;
    95% intervals from 300 simulated test sets of 250 videos cover it about 95% of the time."""
    rng = np.random.default_rng(3)
    cover, trials = 0, 300
    for t in range(trials):
        kind = rng.choice(4, size=250, p=[0.12, 0.06, 0.6, 0.22])  # b only, a only, both, neither
        a, b = np.isin(kind, (1, 2)), np.isin(kind, (0, 2))
        iv = paired_bootstrap(a, b, resamples=2000, seed=t)
        cover += iv.low <= 0.06 <= iv.high
    assert 0.91 <= cover / trials <= 0.985


def test_resampling_by_counts_is_the_same_bootstrap_as_resampling_videos() -> None:
    rng = np.random.default_rng(4)
    d = rng.choice([-1.0, 0.0, 1.0], size=280, p=[0.05, 0.85, 0.1])
    by_counts = _resampled_means(d, 20_000, np.random.default_rng(0))
    by_videos = _resampled_means(d, 20_000, np.random.default_rng(1), max_levels=0)
    np.testing.assert_allclose(np.quantile(by_counts, [0.025, 0.5, 0.975]),
                               np.quantile(by_videos, [0.025, 0.5, 0.975]), atol=0.004)
    assert by_counts.std() == pytest.approx(d.std() / math.sqrt(d.size), rel=0.05)  # the standard error


def test_bootstrap_is_seeded_and_fast_at_ucf101_scale() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(13_320) < 0.80, rng.random(13_320) < 0.81
    start = time.perf_counter()
    first = paired_bootstrap(a, b)
    assert time.perf_counter() - start < 2.0
    assert paired_bootstrap(a, b) == first  # same seed, same interval
    assert first.resamples == 10_000 and first.low < first.difference < first.high
    many_levels = rng.random(13_320)  # fractions: video indices are drawn, in bounded chunks
    start = time.perf_counter()
    iv = paired_bootstrap(np.zeros(13_320), many_levels, resamples=1000)
    assert time.perf_counter() - start < 2.0 and iv.low < many_levels.mean() < iv.high


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="same videos"):
        paired_bootstrap([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="no videos"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match=r"\(N,\)"):
        compare_predictions([0, 1], [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="own"):
        paired_seed_comparison([0, 1], [[0, 1]], [])


# ----------------------------------------------------------------------------------- per class, seeds


def test_per_class_counts_and_the_few_videos_flag() -> None:
    labels = np.array([0] * 10 + [1] * 10 + [2] * 4)
    a = labels.copy()
    b = labels.copy()
    a[:8] = 1  # class 0: B right on 8 videos A misses
    b[10:12] = 0  # class 1: A right on 2 videos B misses
    c = compare_predictions(labels, a, b, ["zero", "one", "two"])
    rows = {r["class"]: r for r in c.per_class}
    assert (rows["zero"]["b_right_a_wrong"], rows["zero"]["a_right_b_wrong"], rows["zero"]["few_videos"]) == (8, 0, False)
    assert (rows["one"]["b_right_a_wrong"], rows["one"]["a_right_b_wrong"], rows["one"]["few_videos"]) == (0, 2, True)
    assert rows["two"]["few_videos"] is False and rows["two"]["support"] == 4  # no change: nothing to flag
    assert sum(r["b_right_a_wrong"] for r in c.per_class) == c.b_right_a_wrong == 8
    as_json = c.as_dict()
    assert {"difference", "ci95", "mcnemar_p", "b_right_a_wrong", "a_right_b_wrong", "verdict"} <= set(as_json)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 10, 29, 30, 101])
@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_t_critical_is_scipys(df: int, level: float) -> None:
    assert t_critical(level, df) == pytest.approx(stats.t.ppf((1 + level) / 2, df), rel=1e-9)


def test_seed_interval_is_the_t_interval() -> None:
    values = [0.712, 0.684, 0.741, 0.699]
    iv = seed_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (iv.low, iv.high) == pytest.approx((low, high), rel=1e-9)
    assert iv.std == pytest.approx(np.std(values, ddof=1)) and iv.n == 4
    one = seed_interval([0.7])
    assert one.std == 0.0 and math.isnan(one.low) and math.isnan(one.high)
    with pytest.raises(ValueError, match="NaN"):
        seed_interval([0.7, float("nan")])


def test_seeded_runs_pair_seeds_and_videos() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 5, size=400)
    # B is better than A by a margin in every seed; A's seeds differ from each other
    preds_a = [np.where(rng.random(400) < 0.70, labels, (labels + 1) % 5) for _ in range(3)]
    preds_b = [np.where(rng.random(400) < 0.80, labels, (labels + 2) % 5) for _ in range(3)]
    c = paired_seed_comparison(labels, preds_a, preds_b, [str(i) for i in range(5)])
    per_seed = [np.mean(pb == labels) - np.mean(pa == labels) for pa, pb in zip(preds_a, preds_b)]
    assert c.seeds == 3 and c.difference == pytest.approx(np.mean(per_seed))
    assert c.seed_interval is not None and c.seed_interval["mean"] == pytest.approx(np.mean(per_seed))
    assert c.clear and c.verdict.startswith("Over 3 seeds, B gets")
    same = paired_seed_comparison(labels, preds_a, preds_a)
    assert same.mcnemar_p == 1.0 and same.difference == 0.0 and "no difference to test" in same.verdict
    one = paired_seed_comparison(labels, preds_a[:1], preds_b[:1])
    assert one.mcnemar_p == compare_predictions(labels, preds_a[0], preds_b[0]).mcnemar_p
