"""The report shows videos: each run's most wrong test videos and those it fixed against the baseline, as frame
strips decoded from the real (generated) videos, enlarged on click in a real headless Chromium; it says so and
still builds when the videos are gone. A 400-class confusion matrix is an image with counts on hover, and the
report stays small."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from actionlab.config import TrainConfig, apply_overrides, save_yaml
from actionlab.data.index import index_dataset
from actionlab.data.manifest import write_manifest
from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.metrics import summarize
from actionlab.evaluate.predictions import Predictions, save_predictions
from actionlab.report.gallery import most_fixed, most_wrong, video_root
from actionlab.report.html import load_run, write_report
from browser import CHROMIUM, NO_CHROMIUM, launch

CASE = re.compile(r'<figure class="vcase" tabindex="0" role="button"[^>]*><img src="data:image/jpeg;base64,([^"]+)"')


def make_run(root: Path, name: str, keys: list[str], labels: np.ndarray, right: np.ndarray, classes: list[str],
             manifest: Path | None, seed: int) -> Path:
    """A run directory as training writes it; ``right[i]`` says whether video ``i`` is classified correctly."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    logits = rng.normal(0, 0.3, (len(keys), k))
    wrong_class = (labels + 1 + rng.integers(0, k - 1, len(keys))) % k
    winner = np.where(right, labels, wrong_class)
    logits[np.arange(len(keys)), winner] += rng.uniform(1.0, 4.0, len(keys))  # various confidences
    scores = log_softmax(logits)
    run = root / name
    run.mkdir(parents=True)
    meta = {"kind": "video", "manifest": str(manifest)} if manifest is not None else {}
    save_yaml(apply_overrides(TrainConfig(), {"model.name": "r2plus1d_18"}), run / "config.yaml",
              extra={"git": "abc", "meta": meta})
    save_predictions(run / "predictions_test.npz", keys=keys, labels=labels, scores=scores, classes=classes)
    (run / "metrics.json").write_text(json.dumps(summarize(scores, labels, classes)))
    return run


@pytest.fixture(scope="module")
def runs(synth_ucf101: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("gallery")
    m, _ = index_dataset(synth_ucf101, layout="ucf101", workers=0, val_fraction=0.34)
    manifest = root / "manifest.csv"
    write_manifest(m, manifest)
    test = m.split("test")
    keys, labels = [r.path for r in test], np.array([r.label_index for r in test])
    n = len(keys)
    base_right = np.arange(n) % 2 == 0  # the baseline gets every other video
    run_right = ~base_right | (np.arange(n) % 4 == 0)  # fixes all it missed, breaks half of the rest
    base = make_run(root, "single_frame", keys, labels, base_right, list(m.classes), manifest, 0)
    run = make_run(root, "r2plus1d", keys, labels, run_right, list(m.classes), manifest, 1)
    return {"root": root, "manifest": manifest, "base": base, "run": run, "n": n, "classes": list(m.classes),
            "missed": int((~run_right).sum()), "fixed": int((run_right & ~base_right).sum())}


def test_most_wrong_is_least_sure_of_the_truth_and_fixed_gains_most() -> None:
    classes = ("a", "b", "c")
    p = Predictions(keys=["v0", "v1", "v2", "v3"], labels=[0, 1, 2, 0], classes=classes, scores=np.log([
        [0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.1, 0.85, 0.05], [0.2, 0.5, 0.3]]))
    assert [c.key for c in most_wrong(p, 5)] == ["v2", "v1", "v3"]  # p(true) 0.05, 0.2, 0.2 (ties: order)
    assert most_wrong(p, 1)[0].pred == 1 and most_wrong(p, 1)[0].p_label == pytest.approx(0.05)
    base = Predictions(keys=["v3", "v0", "v9"], labels=[0, 0, 1], classes=classes, scores=np.log([
        [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.5, 0.5, 0.0 + 1e-9]]))
    fixed = most_fixed(p, base, 5)
    assert [c.key for c in fixed] == ["v0"]  # v3 is wrong in both; v1, v2 are not in the baseline
    assert fixed[0].base_pred == 1 and fixed[0].base_p_label == pytest.approx(0.1)


def test_report_shows_most_wrong_and_fixed_videos_as_strips(runs: dict, tmp_path: Path) -> None:
    base, run = load_run(runs["base"]), load_run(runs["run"])
    assert video_root(run)[0] is not None
    html = write_report(tmp_path / "r.html", [base, run], baseline=base, videos=4).read_text()
    assert "Test videos it got most wrong" in html and "Videos r2plus1d fixed" in html
    strips = CASE.findall(html)
    shown = min(4, runs["missed"]) + min(4, runs["fixed"]) + min(4, runs["n"] - runs["n"] // 2)
    assert len(strips) == shown
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(strips[0]))) as img:
        assert img.format == "JPEG" and img.height == 112 and img.width > 5 * 112  # six 96x128 frames at 112
        assert np.asarray(img).std() > 10  # real frames, not a blank
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_report_says_when_the_videos_are_gone_and_still_builds(runs: dict, tmp_path: Path) -> None:
    moved = tmp_path / "runs"
    shutil.copytree(runs["root"], moved)
    (moved / "manifest.csv").unlink()
    cfg = (moved / "r2plus1d" / "config.yaml").read_text().replace(str(runs["manifest"]), str(moved / "manifest.csv"))
    (moved / "r2plus1d" / "config.yaml").write_text(cfg)
    html = write_report(tmp_path / "r.html", [load_run(moved / "r2plus1d")], videos=3).read_text()
    assert "The test videos cannot be shown: its manifest" in html and "is gone" in html
    assert not CASE.findall(html) and "data:image/jpeg" not in html
    assert html.count('class="vmissing"') == min(3, runs["missed"])  # the cases are still listed by name


def test_a_relative_manifest_path_is_found_above_the_run(runs: dict, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Training recorded ``--manifest manifest.csv`` from the project folder; the report runs from elsewhere."""
    project = tmp_path / "project"
    shutil.copytree(runs["root"], project)
    config = project / "r2plus1d" / "config.yaml"
    config.write_text(config.read_text().replace(str(runs["manifest"]), "manifest.csv"))
    monkeypatch.chdir(tmp_path)
    root, why = video_root(load_run(project / "r2plus1d"))
    assert why is None and (root / load_run(project / "r2plus1d").predictions.keys[0]).is_file()


def make_large_run(root: Path, k: int = 400, per_class: int = 5, seed: int = 0) -> Path:
    """A ``k``-class run with ``per_class`` test videos per class and a plausible, sparse confusion matrix."""
    rng = np.random.default_rng(seed)
    classes = [f"class_{i:03d}_" + "x" * int(rng.integers(0, 20)) for i in range(k)]
    classes[7] = "</script><img src=x onerror=alert(1)>"
    labels = np.repeat(np.arange(k), per_class)
    keys = [f"{classes[y]}/v_{i:05d}.avi" for i, y in enumerate(labels)]
    return make_run(root, f"k{k}", keys, labels, rng.random(len(labels)) < 0.6, classes, None, seed)


def test_a_400_class_report_stays_small(tmp_path: Path) -> None:
    run = load_run(make_large_run(tmp_path))
    html = write_report(tmp_path / "big.html", [run]).read_text()
    assert len(html.encode()) < 2_000_000, len(html.encode())
    assert 'class="cell' not in html and html.count('class="cmimg"') == 1
    data = json.loads(re.search(r'<script type="application/json" class="cmdata">(.*?)</script>', html).group(1))
    counts = np.zeros((400, 400), np.int64)
    counts.flat[data["cells"][0::2]] = data["cells"][1::2]
    np.testing.assert_array_equal(counts, run.confusion)
    assert data["classes"][7] == "</script><img src=x onerror=alert(1)>"  # text again after JSON.parse
    assert "<img src=x" not in html


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_strips_open_larger_on_click_and_the_big_matrix_counts_on_hover(runs: dict, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    report = write_report(tmp_path / "r.html", [load_run(runs["base"]), load_run(runs["run"])],
                          baseline=load_run(runs["base"]))
    big = write_report(tmp_path / "big.html", [load_run(make_large_run(tmp_path))])
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (errors.append("dialog " + d.message), d.dismiss()))
            page.goto(report.resolve().as_uri())
            cases = page.locator(".vcase[role=button]")
            assert cases.count() >= 6 and page.locator("#lightbox").is_hidden()
            cases.nth(1).click()
            box = page.locator("#lightbox")
            assert box.is_visible()
            assert box.locator("img").get_attribute("src") == cases.nth(1).locator("img").get_attribute("src")
            shown = box.locator("img").bounding_box()
            assert shown["width"] > cases.nth(1).locator("img").bounding_box()["width"] * 1.5  # larger
            assert "true" in box.locator("figcaption").inner_text()
            page.screenshot(path=str(tmp_path / "lightbox.png"))
            page.keyboard.press("Escape")
            assert box.is_hidden()
            page.goto(big.resolve().as_uri())
            page.wait_for_load_state("load")
            img = page.locator("img.cmimg")
            r = img.bounding_box()
            # row 7 (the hostile class name), column 8: the cell under the mouse
            page.mouse.move(r["x"] + (8.5 / 400) * r["width"], r["y"] + (7.5 / 400) * r["height"])
            tip = page.locator("#tip").inner_text()
            assert tip.startswith("</script><img src=x onerror=alert(1)> → class_008") and " of 5 (" in tip
        finally:
            browser.close()
    assert not errors, errors
    assert (tmp_path / "lightbox.png").stat().st_size > 10_000
