"""Comparisons you can trust: is run B better than run A by more than chance? (numpy only)

Two runs evaluated on the same videos differ only on the *discordant* videos: those one run gets right and the
other wrong. Every function here reads the runs through those pairs, so a comparison is *paired* (each video is
compared with itself) and far more sensitive than two separate accuracies with error bars:

- :func:`paired_bootstrap`: the top-1 difference ``B - A`` and a percentile interval, the videos resampled with
  replacement (a resampled video brings both runs' answers, keeping the pairing), a fixed-seed
  :class:`numpy.random.Generator`, 10,000 resamples by default.
- :func:`mcnemar_exact`: McNemar's exact test. If the runs were equally good, each discordant video would be a
  fair coin toss between them; the p-value is the chance of a split at least as lopsided as the one seen.
- :func:`compare_predictions`: both of the above, the same counts per class (flagging a class whose change rests
  on fewer than :data:`FEW_VIDEOS` videos) and one plain sentence (:func:`verdict`).
- :func:`seed_interval`: mean, standard deviation and Student-t interval of a metric over training seeds.
- :func:`paired_seed_comparison`: two seeded runs, each seed paired with its own seed and each video with
  itself; the per-seed video differences are pooled per video before resampling videos.

A difference is called *clear* only when both readings agree: McNemar's p < 0.05 and the 95% interval leaves
out 0. When only one of them says so the sentence says "not clearly better, borderline": with few discordant
videos the exact test is cautious and the bootstrap interval a little bold, and they can straddle the line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FEW_VIDEOS",
    "BootstrapInterval",
    "PairedComparison",
    "SeedInterval",
    "compare_predictions",
    "format_p",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_seed_comparison",
    "seed_interval",
    "sign_flip_p",
    "t_critical",
    "verdict",
]

FEW_VIDEOS = 5
"""A class's change that rests on fewer discordant videos than this is flagged: a video or two either way."""
ALPHA = 0.05
"""The p-value under which (with a 95% interval leaving out 0) a difference is called clear."""
RESAMPLES = 10_000
"""Bootstrap resamples by default."""
_CHUNK = 4_000_000
"""Numbers drawn per chunk of resamples (32 MB of int64): memory stays bounded at any test-set size."""
_MAX_LEVELS = 64
"""Up to this many distinct per-video values, resample by counts (see :func:`_resampled_means`)."""


@dataclass(frozen=True)
class BootstrapInterval:
    """A paired difference and its bootstrap percentile interval."""

    difference: float
    """``mean(B) - mean(A)`` over the videos, e.g. top-1 of B minus top-1 of A (a fraction, not points)."""
    low: float
    high: float
    level: float
    """Coverage of ``[low, high]``, e.g. 0.95."""
    resamples: int


@dataclass(frozen=True)
class SeedInterval:
    """A metric over training seeds: mean, sample standard deviation and a Student-t interval of the mean."""

    mean: float
    std: float
    """Sample standard deviation (``ddof=1``); 0 for one seed."""
    low: float
    """Lower end of the interval; NaN with one seed (one seed says nothing about seed-to-seed spread)."""
    high: float
    n: int
    level: float


@dataclass(frozen=True)
class PairedComparison:
    """Run B against run A on the same videos (see :func:`compare_predictions`); ``as_dict`` is its JSON."""

    a: str
    b: str
    n_videos: int
    top1_a: float
    top1_b: float
    difference: float
    """``top1_b - top1_a`` (a fraction)."""
    ci95: tuple[float, float]
    """Paired bootstrap 95% interval of ``difference``."""
    mcnemar_p: float
    """McNemar's exact p-value (with several seeds the exact sign-flip test, which is McNemar's for one)."""
    b_right_a_wrong: int
    a_right_b_wrong: int
    verdict: str
    """One sentence a student understands."""
    per_class: list[dict[str, Any]] = field(default_factory=list)
    """Per class with videos: ``class``, ``index``, ``support``, ``a_correct``, ``b_correct``,
    ``b_right_a_wrong``, ``a_right_b_wrong``, ``few_videos`` (the change rests on fewer than 5 videos)."""
    resamples: int = RESAMPLES
    seeds: int = 1
    """Training seeds pooled (:func:`paired_seed_comparison`); counts are then summed over seeds."""
    seed_interval: dict[str, Any] | None = None
    """With several seeds: the per-seed differences' mean, std and t-interval (:class:`SeedInterval`)."""

    @property
    def clear(self) -> bool:
        """Whether the difference is more than chance: p < 0.05 and the interval leaves out 0."""
        return self.mcnemar_p < ALPHA and not self.ci95[0] <= 0.0 <= self.ci95[1]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95"] = [float(self.ci95[0]), float(self.ci95[1])]
        out["clear"] = self.clear
        return out


# ----------------------------------------------------------------------------------- bootstrap


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator,
                     max_levels: int = _MAX_LEVELS) -> np.ndarray:
    """``(resamples,)`` means of ``values (N,)`` resampled with replacement, drawn in bounded chunks.

    A resample's mean depends only on how many of its ``N`` draws land on each distinct value, and those counts
    are ``Multinomial(N, share of each value)``. Per-video differences take few values (-1, 0, 1 for one seed),
    so drawing the counts is the same bootstrap at ``O(levels)`` per resample instead of ``O(N)``: 10,000
    resamples of 13,320 videos (all of UCF-101) take milliseconds. Many distinct values: video indices are drawn
    (about 0.7 s for the same size on one core).
    """
    n = values.size
    out = np.empty(resamples, dtype=np.float64)
    levels, counts = np.unique(values, return_counts=True)
    if len(levels) <= max_levels:
        shares = counts / n
        per = max(1, _CHUNK // len(levels))
        for start in range(0, resamples, per):
            m = min(per, resamples - start)
            drawn = rng.multinomial(n, shares, size=m)  # (m, levels): how often each value was drawn
            out[start:start + m] = drawn @ levels / n
        return out
    per = max(1, _CHUNK // n)
    for start in range(0, resamples, per):
        m = min(per, resamples - start)
        index = rng.integers(0, n, size=(m, n))  # (m, N) resampled videos
        out[start:start + m] = values[index].mean(axis=1)
    return out


def _as_correct(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be (N,) per-video correctness (1 right, 0 wrong), got shape {arr.shape}")
    return arr


def paired_bootstrap(correct_a: Any, correct_b: Any, resamples: int = RESAMPLES, seed: int = 0,
                     level: float = 0.95) -> BootstrapInterval:
    """The difference ``mean(correct_b) - mean(correct_a)`` and its paired bootstrap percentile interval.

    ``correct_a``, ``correct_b``: ``(N,)`` per-video correctness of two runs on the same videos in the same order
    (bool or 0/1; or a fraction in [0, 1], e.g. the share of seeds that got the video right). Videos are
    resampled with replacement ``resamples`` times by ``numpy.random.default_rng(seed)``; the interval holds
    the central ``level`` of the resampled differences.
    """
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"the two runs must be scored on the same videos: {a.shape[0]} vs {b.shape[0]} values")
    if not a.size:
        raise ValueError("no videos to compare")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    diff = b - a
    means = _resampled_means(diff, int(resamples), np.random.default_rng(seed))
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return BootstrapInterval(float(diff.mean()), float(low), float(high), float(level), int(resamples))


# ----------------------------------------------------------------------------------- exact tests


def _half_binomial_pmf(n: int) -> np.ndarray:
    """``(n + 1,)`` probabilities of ``k`` heads in ``n`` fair coin tosses (log space: no overflow at any n)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    log_comb = np.concatenate([[0.0], np.cumsum(np.log((n - k + 1) / k))])
    return np.exp(log_comb - n * math.log(2.0))


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """McNemar's exact two-sided p-value from the discordant counts: ``b_only`` videos B gets right and A wrong,
    ``a_only`` the reverse. Under "equally good" each of the ``n = b_only + a_only`` discordant videos goes
    either way with probability 1/2; p is ``P(|2X - n| >= |b_only - a_only|)``, ``X ~ Binomial(n, 1/2)``
    (``scipy.stats.binomtest(b_only, n, 0.5).pvalue``). No discordant video: p = 1."""
    b_only, a_only = int(b_only), int(a_only)
    if b_only < 0 or a_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b_only} and {a_only}")
    n = b_only + a_only
    if n == 0:
        return 1.0
    heads = np.arange(n + 1)
    pmf = _half_binomial_pmf(n)
    return float(min(1.0, pmf[np.abs(2 * heads - n) >= abs(b_only - a_only)].sum()))


def sign_flip_p(differences: Any) -> float:
    """Exact two-sided sign-flip test of per-video differences summed over seeds.

    ``differences``: ``(N,)`` integers, per video ``sum over seeds of (B right) - (A right)``, in ``[-S, S]``.
    Under "equally good" (seeds paired), swapping A and B on a video flips its sign, each with probability 1/2;
    p is the chance that the flipped total is at least as far from 0 as the observed one. With one seed this
    is exactly :func:`mcnemar_exact`.
    """
    d = np.asarray(differences)
    if d.size and not np.issubdtype(d.dtype, np.integer):
        if not np.allclose(d, np.round(d)):
            raise ValueError("sign_flip_p needs integer differences (summed over seeds, not averaged)")
        d = np.round(d)
    d = d.astype(np.int64)
    observed = abs(int(d.sum()))
    sizes, counts = np.unique(np.abs(d[d != 0]), return_counts=True)
    if not sizes.size:
        return 1.0
    dist, offset = np.ones(1), 0  # probabilities of the total = offset + index
    for size, count in zip(sizes.tolist(), counts.tolist()):
        # ``count`` videos of difference +-size: total size * (2 heads - count), on a lattice of step 2 * size
        lattice = np.zeros(2 * size * count + 1)
        lattice[:: 2 * size] = _half_binomial_pmf(count)
        dist, offset = np.convolve(dist, lattice), offset - size * count
    totals = offset + np.arange(dist.size)
    return float(min(1.0, dist[np.abs(totals) >= observed].sum()))


# ----------------------------------------------------------------------------------- words


def format_p(p: float) -> str:
    """``p = 0.06``, ``p = 0.004``, ``p < 0.001``."""
    if math.isnan(p):
        return "p = ?"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def verdict(a: str, b: str, b_only: int, a_only: int, p: float, difference: float, ci: tuple[float, float],
            seeds: int = 1) -> str:
    """One sentence: ``B gets 14 videos right that A misses and A gets 5 that B misses; top-1 +3.2 points (95%
    interval -0.4 to +6.8), p = 0.06: not clearly better ...``. ``difference`` is top-1 of ``B - A`` and ``ci``
    its interval (fractions); ``p`` McNemar's (or with ``seeds > 1`` the sign-flip test's) p-value."""
    def videos(k: int) -> str:
        return f"{k} video{'' if k == 1 else 's'}"

    over = f"Over {seeds} seeds, " if seeds > 1 else ""
    answers = " (video x seed)" if seeds > 1 else ""
    head = f"{over}{b} gets {videos(b_only)}{answers} right that {a} misses and {a} gets {a_only} that {b} misses"
    if b_only == a_only == 0:
        return f"{head}: they get the same videos right, so there is no difference to test"
    low, high = 100 * ci[0], 100 * ci[1]
    better = "better" if b_only > a_only else "worse"
    if b_only == a_only:
        judged = "no difference (each wins as many videos as it loses)"
    elif p < ALPHA and not low <= 0.0 <= high:
        judged = f"{b} is clearly {better} than {a}"
    elif p < ALPHA:
        judged = f"not clearly {better}, borderline: p is under 0.05 but the interval includes 0; more videos would tell"
    elif not low <= 0.0 <= high:
        judged = (f"not clearly {better}, borderline: the interval leaves out 0 but p is above 0.05; more videos "
                  "would tell")
    else:
        judged = f"not clearly {better} (a gap this size often comes from chance)"
    return (f"{head}; top-1 {100 * difference:+.1f} points (95% interval {low:+.1f} to {high:+.1f}), "
            f"{format_p(p)}: {judged}")


# ----------------------------------------------------------------------------------- comparisons


def _per_class(labels: np.ndarray, right_a: np.ndarray, right_b: np.ndarray,
               classes: Sequence[str]) -> list[dict[str, Any]]:
    """The discordant counts of each class with videos (``right_*``: ``(S, N)`` bool, summed over seeds)."""
    k = len(classes)
    support = np.bincount(labels, minlength=k)
    b_only = np.bincount(labels, weights=(right_b & ~right_a).sum(0), minlength=k).astype(np.int64)
    a_only = np.bincount(labels, weights=(right_a & ~right_b).sum(0), minlength=k).astype(np.int64)
    a_correct = np.bincount(labels, weights=right_a.sum(0), minlength=k).astype(np.int64)
    b_correct = np.bincount(labels, weights=right_b.sum(0), minlength=k).astype(np.int64)
    return [{"class": classes[i], "index": int(i), "support": int(support[i]), "a_correct": int(a_correct[i]),
             "b_correct": int(b_correct[i]), "b_right_a_wrong": int(b_only[i]), "a_right_b_wrong": int(a_only[i]),
             "few_videos": bool(0 < b_only[i] + a_only[i] < FEW_VIDEOS)}
            for i in np.flatnonzero(support > 0)]


def _paired(labels: np.ndarray, right_a: np.ndarray, right_b: np.ndarray, classes: Sequence[str] | None,
            names: tuple[str, str], resamples: int, seed: int) -> PairedComparison:
    """The comparison of ``right_a``/``right_b`` ``(S, N)`` bool (seeds x videos, seeds paired)."""
    s, n = right_a.shape
    if not n:
        raise ValueError("no labelled videos to compare")
    per_video = right_b.sum(0).astype(np.int64) - right_a.sum(0)  # (N,) in [-S, S]
    boot = paired_bootstrap(right_a.mean(0), right_b.mean(0), resamples=resamples, seed=seed)
    b_only, a_only = int((right_b & ~right_a).sum()), int((right_a & ~right_b).sum())
    p = mcnemar_exact(b_only, a_only) if s == 1 else sign_flip_p(per_video)
    ci = (boot.low, boot.high)
    seeds_iv = None
    if s > 1:
        seeds_iv = asdict(seed_interval(right_b.mean(1) - right_a.mean(1)))
    return PairedComparison(
        a=names[0], b=names[1], n_videos=int(n), top1_a=float(right_a.mean()), top1_b=float(right_b.mean()),
        difference=boot.difference, ci95=ci, mcnemar_p=p, b_right_a_wrong=b_only, a_right_b_wrong=a_only,
        verdict=verdict(names[0], names[1], b_only, a_only, p, boot.difference, ci, seeds=s),
        per_class=_per_class(labels, right_a, right_b, classes) if classes is not None else [],
        resamples=int(resamples), seeds=int(s), seed_interval=seeds_iv)


def _check_labels(labels: Any, preds: Sequence[Any], classes: Sequence[str] | None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"labels must be (N,) integer class indices, got {labels.dtype} {labels.shape}")
    for p in preds:
        if np.shape(p) != labels.shape:
            raise ValueError(f"predictions must be (N,) = {labels.shape} (one per labelled video), got "
                             f"{np.shape(p)}")
    if labels.size and (labels.min() < 0 or (classes is not None and labels.max() >= len(classes))):
        raise ValueError(f"labels must be in [0, {len(classes) if classes is not None else 'K'}): compare "
                         "labelled videos only")
    return labels.astype(np.int64)


def compare_predictions(labels: Any, pred_a: Any, pred_b: Any, classes: Sequence[str] | None = None,
                        names: tuple[str, str] = ("A", "B"), resamples: int = RESAMPLES,
                        seed: int = 0) -> PairedComparison:
    """Run B against run A on the same labelled videos: ``labels``, ``pred_a``, ``pred_b`` are ``(N,)`` class
    indices in the same video order. Gives the top-1 difference ``B - A`` with its paired bootstrap 95%
    interval, McNemar's exact p-value, the discordant counts (``b_right_a_wrong``, ``a_right_b_wrong``), the
    same counts per class (with ``classes``, the ``K`` names) and a plain sentence."""
    labels = _check_labels(labels, [pred_a, pred_b], classes)
    right_a = (np.asarray(pred_a) == labels)[None]  # (1, N)
    right_b = (np.asarray(pred_b) == labels)[None]
    return _paired(labels, right_a, right_b, classes, names, resamples, seed)


def paired_seed_comparison(labels: Any, preds_a: Sequence[Any], preds_b: Sequence[Any],
                           classes: Sequence[str] | None = None, names: tuple[str, str] = ("A", "B"),
                           resamples: int = RESAMPLES, seed: int = 0) -> PairedComparison:
    """Two seeded runs: ``preds_a[i]`` and ``preds_b[i]`` are ``(N,)`` predictions of the same seed (paired)
    on the same labelled videos (``labels (N,)``).

    Per video the per-seed differences are pooled (B right minus A right, summed over seeds); the bootstrap
    resamples videos with their pooled difference (so a video's seeds stay together) and the p-value is the
    exact sign-flip test of the pooled differences (McNemar's test with one seed). ``seed_interval`` adds the
    mean, std and t-interval of the per-seed top-1 differences. Counts are summed over seeds."""
    if len(preds_a) != len(preds_b) or not preds_a:
        raise ValueError(f"pair each seed with its own: {len(preds_a)} runs of A, {len(preds_b)} of B")
    labels = _check_labels(labels, [*preds_a, *preds_b], classes)
    right_a = np.stack([np.asarray(p) == labels for p in preds_a])  # (S, N)
    right_b = np.stack([np.asarray(p) == labels for p in preds_b])
    return _paired(labels, right_a, right_b, classes, names, resamples, seed)


# ----------------------------------------------------------------------------------- seeds


def _t_central(theta: float, df: int) -> float:
    """``P(|T| < sqrt(df) * tan(theta))`` for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd: (2/pi) (theta + sin(theta) (cos + 2/3 cos^3 + ... + cos^(df-2)))
        term, total = math.cos(theta), 0.0
        for k in range(1, df - 1, 2):
            total += term
            term *= c2 * (k + 1) / (k + 2)
        return 2.0 / math.pi * (theta + s * total)
    term, total = 1.0, 0.0  # even: sin(theta) (1 + 1/2 cos^2 + 3/8 cos^4 + ... + cos^(df-2))
    for k in range(0, df - 1, 2):
        total += term
        term *= c2 * (k + 1) / (k + 2)
    return s * total


def t_critical(level: float, df: int) -> float:
    """The two-sided Student-t critical value: ``P(|T| <= t) = level`` with integer ``df``
    (``scipy.stats.t.ppf((1 + level) / 2, df)``), by bisection on the exact distribution function."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if int(df) != df or df < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    lo, hi = 0.0, math.pi / 2
    for _ in range(80):  # t = sqrt(df) tan(theta): bisect theta in (0, pi/2), to double precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_central(mid, int(df)) < level else (lo, mid)
    return math.sqrt(df) * math.tan((lo + hi) / 2)


def seed_interval(values: Any, level: float = 0.95) -> SeedInterval:
    """Mean, sample standard deviation and the Student-t interval ``mean +- t * std / sqrt(n)`` of a metric
    over ``n`` seeds (``values (n,)``). One seed: std 0 and no interval (NaN ends)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not x.size:
        raise ValueError("no values: a seed interval needs at least one seed")
    if np.isnan(x).any():
        raise ValueError("a value is NaN (a diverged seed?); leave it out or fix the run")
    mean = float(x.mean())
    if x.size == 1:
        return SeedInterval(mean, 0.0, math.nan, math.nan, 1, float(level))
    std = float(x.std(ddof=1))
    half = t_critical(level, x.size - 1) * std / math.sqrt(x.size)
    return SeedInterval(mean, std, mean - half, mean + half, int(x.size), float(level))
