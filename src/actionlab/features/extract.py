"""Resumable, crash-safe, sharded feature extraction: videos of a manifest -> an HDF5 feature store.

How it runs (one process, or each rank under ``torchrun``)::

    DataLoader workers: the modality's step (``features.modalities.build_pipeline``):
                        RGB: frame table -> sampled indices -> decode at the backbone's size (FFmpeg scaler)
                             -> centre crop + normalize: (T, 3, S, S) float32 per video
                        flow: sampled indices -> decode their windows of L+1 frames -> OpenCV flow ->
                              quantised (T, 2L, H, W) uint8 [-> centre crop, scaled: (T, 2L, S, S) float32]
            |  bounded prefetch (workers x 2 videos in flight), so memory is flat in the dataset size
    main process: batches of exactly ``cfg.batch_size`` frames across videos (pinned on CUDA) -> engine
                  (ONNX Runtime on CPU, PyTorch + AMP on CUDA) -> features (T, D) [+ head logits]
                  (raw flow has no network: the workers' arrays are stored as they are)
            |  every ``part_videos`` videos / ``part_seconds`` seconds
    OUT.parts/part-<rank>-<n>.h5   (each written to a temp name, then atomically renamed)
            |  after all ranks finish (barrier), rank 0
    OUT  (merge + streaming train statistics, written atomically; then OUT.parts/ is removed)

Crash safety: HDF5 files are not safe when their writer dies, so nothing is ever appended in place. A part file
exists only once complete, so the set of keys in the part files *is* the resume state: killed at any moment
(even ``kill -9``) and run again, extraction skips the finished videos and redoes only the ones in flight.
A part file damaged from outside (truncated by a copy, a disk error) is deleted with a warning and its videos are
extracted again. A full disk stops the run with a ``DiskFullError`` naming the file and the space needed, the
finished parts kept. One process writes a store at a time (``OUT.lock``; under torchrun, rank 0 holds it); a
second one is refused with the holder's pid and host. A finished store with the same provenance makes a rerun a
no-op; different provenance is refused unless ``overwrite=True``. A video that fails to decode stops the run with an error naming the file, unless
``skip_bad=True``: then it is listed in the report and in the store's ``skipped`` attribute (the dataset never
shrinks silently).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from actionlab.config import ExtractConfig
from actionlab.data.manifest import Manifest, read_manifest
from actionlab.features.batching import Batcher, Job
from actionlab.features.engine import create_engine, describe_engine
from actionlab.features.frames import FramePipeline, VideoFrames, build_provenance, compat
from actionlab.features.modalities import build_pipeline
from actionlab.features.parts import merge_parts, part_contents, write_part
from actionlab.features.store import (
    FeatureStore,
    IncompatibleStoreError,
    VideoFeatures,
    as_compared,
    compare_provenance,
    video_key,
)
from actionlab.types import VideoRecord
from actionlab.utils import FileError, distributed_info, kill_point, output_lock, select_device

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""``progress(videos_finished, videos_total)``; called once at the start (resumed videos count as finished)
and after every finished video of this process."""


class ExtractError(RuntimeError):
    """Extraction cannot go on (a bad video without ``skip_bad``, an incompatible existing store, ...)."""


@dataclass
class ExtractReport:
    """What one call of :func:`extract_features` did (summed over ranks under torchrun)."""

    out_path: Path
    done: int = 0
    """Videos extracted by this call."""
    skipped: int = 0
    """Videos already finished before this call (resumed part files or an existing matching store)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` of videos that could not be decoded (only with ``skip_bad=True``)."""
    frames: int = 0
    """Frames extracted by this call."""
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the CLI, one line per failed video, and what was left out of the store."""
        lines = [f"{self.out_path}: extracted {self.done} videos ({self.frames} frames, "
                 f"{self.frames_per_second:.1f} frames/s, {self.seconds:.1f} s), {self.skipped} already done, "
                 f"{len(self.failed)} failed"]
        lines += [f"  failed: {path}: {reason}" for path, reason in self.failed]
        total = self.done + self.skipped + len(self.failed)
        lines.append(f"left out: {len(self.failed)} of {total} videos (undecodable, skipped with --skip-bad)"
                     if self.failed else f"left out: none (all {total} videos are in the store)")
        return "\n".join(lines)


def parts_dir(out_path: str | Path) -> Path:
    """Where unfinished work of ``out_path`` lives: ``OUT.parts/``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".parts")


def _identity(x: Any) -> Any:
    return x


def _lower_priority(worker_id: int) -> None:
    """DataLoader ``worker_init_fn`` for CPU inference: decoding is ~10% of the CPU work and should fill idle
    cycles rather than preempt the inference threads (measured: steady rate 0.83-0.90 -> 0.87-0.98 of the bare
    engine on 2 cores; ``benchmarks/bench_extract.py``)."""
    with contextlib.suppress(AttributeError, OSError):  # os.nice: POSIX only
        os.nice(10)


# ----------------------------------------------------------------------------------- batching


# ----------------------------------------------------------------------------------- distributed


class _Dist:
    """torch.distributed when ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA), else a no-op."""

    def __init__(self, device: torch.device) -> None:
        self.rank, self.world, self.local_rank = distributed_info()
        self.owned = False
        self.active = self.world > 1
        if self.active and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
            self.owned = True
        self.device = device

    def barrier(self) -> None:
        if self.active:
            if torch.distributed.get_backend() == "nccl":
                torch.distributed.barrier(device_ids=[self.device.index or 0])
            else:
                torch.distributed.barrier()

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owned:
            torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------------- main entry


def _select_records(manifest: Manifest, splits: Sequence[str] | None) -> tuple[list[VideoRecord], list[str]]:
    if splits is None:
        splits = sorted({r.split for r in manifest.records if r.split != "unused"})
    chosen = [r for r in manifest.records if r.split in set(splits)]
    keys = [video_key(r.path) for r in chosen]
    if len(set(keys)) != len(keys):
        raise ExtractError("the manifest lists a video path twice; fix it with `actionlab index`")
    return chosen, list(splits)


def _check_existing(out_path: Path, expected: dict[str, Any], overwrite: bool) -> bool:
    """Whether ``out_path`` is a finished store matching ``expected``; raises on a mismatch (of the store or of
    unfinished part files) unless ``overwrite``."""
    hint = "rerun with overwrite=True (--overwrite) to replace it, or choose another output path"
    finished = False
    if out_path.exists():
        try:
            with FeatureStore(out_path) as fs:
                fs.check_compatible(expected)
            finished = True
        except FileError as e:
            if not overwrite:
                raise ExtractError(f"{e}; or pass --overwrite to extract it again") from e
        except (IncompatibleStoreError, ValueError) as e:
            if not overwrite:
                raise ExtractError(f"{out_path} exists and does not match this extraction ({e}); {hint}") from e
    if not overwrite and not finished:
        for p in sorted(parts_dir(out_path).glob("part-*.h5")):
            try:
                prov = part_contents(p)[0]
            except FileError:
                continue  # damaged: deleted and redone (_drop_damaged_parts)
            diffs = compare_provenance(as_compared(prov), expected)
            if diffs:
                raise ExtractError(f"unfinished extraction in {parts_dir(out_path)} was made with other settings "
                                   f"({'; '.join(diffs)}); {hint}")
    return finished


def extract_features(manifest: Manifest | str | Path, out_path: str | Path, cfg: ExtractConfig | None = None,
                     splits: Sequence[str] | None = None, skip_bad: bool = False, device: str = "auto",
                     progress: ProgressFn | None = None, overwrite: bool = False, part_videos: int = 64,
                     part_seconds: float = 60.0, flow_from: str | Path | None = None) -> ExtractReport:
    """Extract per-frame features of the videos of ``manifest`` into the store ``out_path``.

    Args:
        manifest: a :class:`~actionlab.data.manifest.Manifest` or the path of a manifest CSV.
        out_path: the ``.h5`` store to create; unfinished work lives in ``OUT.parts/`` until the end.
        cfg: backbone, weights, sampler, dtype, batch size, decoding workers, engine.
        splits: which splits to extract (default: every split but ``unused``).
        skip_bad: leave out videos that cannot be decoded (listed in the report and the store) instead of
            failing with an error that names the file.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``; under torchrun each rank uses ``cuda:LOCAL_RANK``.
        progress: ``progress(finished, total)`` callback (the CLI wraps tqdm).
        overwrite: replace an existing store or unfinished parts made with different settings.
        part_videos, part_seconds: write a part file after this many finished videos or seconds, whichever
            comes first (the most work a crash can lose).
        flow_from: flow features only: read the flow from this raw flow store of the same manifest, sampler and
            flow settings instead of computing it (e.g. after fine-tuning a backbone on that store); the store
            made is the same.

    Returns:
        :class:`ExtractReport`. Under torchrun every rank returns the summed report after rank 0 has merged.
    """
    cfg = cfg or ExtractConfig()
    t0 = time.perf_counter()
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    out_path = Path(out_path)
    records, splits = _select_records(manifest, splits)
    if not records:
        raise ExtractError(f"no videos in splits {list(splits)} of the manifest (root {manifest.root})")

    rank, world, local_rank = distributed_info()
    dev = select_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    dist = _Dist(dev)
    try:
        with output_lock(out_path) if dist.rank == 0 else contextlib.nullcontext():
            return _extract(manifest, records, splits, out_path, cfg, skip_bad, dev, dist, progress, overwrite,
                            part_videos, part_seconds, t0, flow_from)
    finally:
        dist.close()


def _extract(manifest: Manifest, records: list[VideoRecord], splits: list[str], out_path: Path,
             cfg: ExtractConfig, skip_bad: bool, dev: torch.device, dist: _Dist, progress: ProgressFn | None,
             overwrite: bool, part_videos: int, part_seconds: float, t0: float,
             flow_from: str | Path | None = None) -> ExtractReport:
    pipeline = build_pipeline(cfg)
    if flow_from is not None:
        from actionlab.features.flow import stored_flow_step

        pipeline = replace(pipeline, step=stored_flow_step(flow_from, manifest, cfg, pipeline.spec))
    provenance = build_provenance(manifest, cfg, pipeline, splits, cfg.engine)
    expected = compat(provenance)
    pdir = parts_dir(out_path)
    keys = [video_key(r.path) for r in records]

    # 1. What exists already. Every rank checks (read-only); rank 0 alone deletes, then everyone syncs.
    finished = _check_existing(out_path, expected, overwrite)
    dist.barrier()
    if finished and not overwrite:
        with FeatureStore(out_path) as fs:
            n, skipped = len(fs), list(fs.skipped)
        logger.info("%s is already complete (%d videos, same provenance): nothing to do", out_path, n)
        if dist.rank == 0 and pdir.exists():  # a crash between the final rename and the clean-up
            shutil.rmtree(pdir, ignore_errors=True)
        if progress:
            progress(n + len(skipped), n + len(skipped))
        dist.barrier()
        return ExtractReport(out_path, skipped=n, failed=skipped, seconds=time.perf_counter() - t0)
    if dist.rank == 0:
        if overwrite and out_path.exists():
            out_path.unlink()
        if overwrite and pdir.exists():
            shutil.rmtree(pdir)
        pdir.mkdir(parents=True, exist_ok=True)
        # Temp files of a writer killed mid-write (a part, or the final store during the merge).
        for tmp in [*pdir.glob(".part-*.tmp"), *out_path.parent.glob(f".{out_path.name}.*.tmp")]:
            tmp.unlink(missing_ok=True)
        _drop_damaged_parts(pdir)
    dist.barrier()

    # 2. Resume state = keys in finished part files; shard what is left across ranks.
    done_keys: set[str] = set()
    next_part = 0
    for p in sorted(pdir.glob("part-*.h5")):
        done_keys.update(part_contents(p)[1])
        r, n = p.stem.split("-")[1:3]
        if int(r) == dist.rank:
            next_part = max(next_part, int(n) + 1)
    pending = [r for r, k in zip(records, keys) if k not in done_keys]
    shard = pending[dist.rank::dist.world]
    resumed = len(records) - len(pending)
    if resumed:
        logger.info("resuming %s: %d of %d videos already extracted", out_path, resumed, len(records))
    logger.info("rank %d/%d: extracting %d videos (%s) with %s (%s weights) on %s", dist.rank, dist.world,
                len(shard), cfg.modality, cfg.backbone, cfg.weights, dev)
    if progress:
        progress(resumed, len(records))

    # 3. Extract this shard.
    done, frames, failed = _run_shard(manifest, shard, pdir, cfg, pipeline, dev, dist.rank, next_part,
                                      provenance, skip_bad, progress, resumed, len(records),
                                      part_videos, part_seconds)

    # 4. Merge on rank 0 once every rank has written its parts.
    dist.barrier()
    totals = dist.gather((done, frames, failed))
    done = sum(t[0] for t in totals)
    frames = sum(t[1] for t in totals)
    if dist.rank == 0:
        _finalize(pdir, out_path, provenance, manifest.classes, keys)
    dist.barrier()
    with FeatureStore(out_path) as fs:
        all_failed = list(fs.skipped)
    report = ExtractReport(out_path, done=done, skipped=resumed, failed=all_failed, frames=frames,
                           seconds=time.perf_counter() - t0)
    logger.info("extracted %d videos (%d frames, %.1f frames/s), %d resumed, %d failed -> %s", report.done,
                report.frames, report.frames_per_second, report.skipped, len(report.failed), out_path)
    return report


def _drop_damaged_parts(pdir: Path) -> None:
    """Delete part files that cannot be read (damaged from outside: parts are written atomically), with a
    warning: their videos are then extracted again like any unfinished ones."""
    for p in sorted(pdir.glob("part-*.h5")):
        try:
            part_contents(p)
        except FileError as e:
            logger.warning("%s: deleted; its videos are extracted again", e.path)
            logger.debug("%s", e)
            p.unlink()


def _finalize(pdir: Path, out_path: Path, provenance: dict[str, Any], classes: Sequence[str],
              keys: Sequence[str]) -> None:
    parts = sorted(pdir.glob("part-*.h5"))
    done: set[str] = set()
    failed: dict[str, str] = {}
    for p in parts:
        _, pkeys, pfailed = part_contents(p)
        done.update(pkeys)
        for path, reason in pfailed:
            failed.setdefault(video_key(path), (path, reason))  # type: ignore[arg-type]
    skipped = [failed[k] for k in keys if k in failed and k not in done]
    final_keys = [k for k in keys if k in done]
    missing = [k for k in keys if k not in done and k not in failed]
    if missing:
        raise ExtractError(f"cannot finalize {out_path}: {len(missing)} video(s) were not extracted "
                           f"(e.g. {missing[:3]}); rerun the extraction to finish them")
    provenance = {**provenance, "skipped": [list(s) for s in skipped], "num_videos": len(final_keys)}
    merge_parts(parts, out_path, provenance, classes, skipped=skipped, keys=final_keys)
    shutil.rmtree(pdir, ignore_errors=True)


def _run_shard(manifest: Manifest, shard: list[VideoRecord], pdir: Path, cfg: ExtractConfig,
               pipeline: FramePipeline, dev: torch.device, rank: int, next_part: int,
               provenance: dict[str, Any], skip_bad: bool, progress: ProgressFn | None, finished_before: int,
               total: int, part_videos: int, part_seconds: float) -> tuple[int, int, list[tuple[str, str]]]:
    """Decode + preprocess (workers) -> infer (here) -> part files. Returns ``(videos, frames, failed)``."""
    if not shard:
        return 0, 0, []
    source = VideoFrames(manifest, shard, pipeline.step)
    it: Iterator[dict[str, Any]] = iter(_loader(source, cfg, pipeline, dev))  # decoding starts before the engine
    batcher = _batcher(pipeline, cfg, dev, provenance)
    parts = _PartWriter(pdir, rank, next_part, provenance, list(manifest.classes), part_videos, part_seconds,
                        progress, finished_before, total)
    for item in it:
        rec = shard[item["i"]]
        if item["error"] is not None:
            path = str(source.path(item["i"]))
            if not skip_bad:
                parts.finish(batcher.flush() if batcher else [])
                parts.flush()  # keep the finished work
                raise ExtractError(f"cannot decode {path}: {item['error']}. Fix or remove the file (and rerun "
                                   "`actionlab index`), or pass --skip-bad (skip_bad=True in Python) to leave it out; it "
                                   "will be listed in the report and in the store's 'skipped' attribute")
            logger.warning("skipping %s: %s", path, item["error"])
            parts.fail(rec.path, item["error"])
            continue
        x = item["x"]  # (T, C, S, S) float32 for the network, or (T, C, H, W) uint8 arrays to store
        t = x.shape[0]
        if batcher is None:
            parts.finish([Job(rec, item["indices"], x.numpy(), None, filled=t)])
            continue
        job = Job(rec, item["indices"], np.empty((t, pipeline.feature_dim), np.float32), None)
        parts.finish(batcher.add(job, x))
    parts.finish(batcher.flush() if batcher else [])
    parts.flush(force=True)
    del it
    return parts.videos, parts.frames, parts.failed


def _loader(source: VideoFrames, cfg: ExtractConfig, pipeline: FramePipeline, dev: torch.device) -> DataLoader:
    """Decoding workers with bounded prefetch: at most workers x 2 decoded videos wait in shared memory."""
    behind = dev.type == "cpu" and pipeline.light_workers  # see FramePipeline
    fresh = multiprocessing.get_context("spawn") if cfg.workers and pipeline.fresh_workers else None
    return DataLoader(source, batch_size=None, shuffle=False, num_workers=cfg.workers, collate_fn=_identity,
                      prefetch_factor=2 if cfg.workers else None, multiprocessing_context=fresh,
                      worker_init_fn=_lower_priority if behind else None)


def _batcher(pipeline: FramePipeline, cfg: ExtractConfig, dev: torch.device, provenance: dict[str, Any]
             ) -> Batcher | None:
    """Frames of several videos batched through the network (None: the step's arrays are stored as they are)."""
    if pipeline.module is None:
        return None
    engine = create_engine(pipeline.module, pipeline.spec, dev, cfg.engine, with_head=cfg.predictions)
    provenance["engine"] = describe_engine(engine)  # informative only (not a compatibility field)

    def run(batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        feats, logits = engine(batch)
        kill_point("extract:infer")
        return np.asarray(feats, np.float32), (None if logits is None else np.asarray(logits, np.float32))

    return Batcher(run, cfg.batch_size, pin=dev.type == "cuda")


class _PartWriter:
    """Finished videos -> part files of this rank, written every ``part_videos`` videos, ``part_seconds`` seconds
    or 256 MiB; undecodable videos are recorded in the next part, so a rerun knows them."""

    def __init__(self, pdir: Path, rank: int, next_part: int, provenance: dict[str, Any], classes: list[str],
                 part_videos: int, part_seconds: float, progress: ProgressFn | None, finished_before: int,
                 total: int) -> None:
        self.pdir, self.rank, self.part, self.provenance, self.classes = pdir, rank, next_part, provenance, classes
        self.part_videos, self.part_seconds = part_videos, part_seconds
        self.progress, self.finished_before, self.total = progress, finished_before, total
        self.buffer: list[VideoFeatures] = []
        self.failed: list[tuple[str, str]] = []
        self.unsaved_failed: list[tuple[str, str]] = []
        self.videos = self.frames = self.bytes = 0
        self.last = time.monotonic()

    def fail(self, path: str, error: str) -> None:
        self.failed.append((path, error))
        self.unsaved_failed.append((path, error))

    def finish(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.buffer.append(VideoFeatures(job.record, job.features, job.indices, job.predictions))
            self.videos += 1
            self.frames += len(job.indices)
            self.bytes += job.features.nbytes
            if self.progress:
                self.progress(self.finished_before + self.videos, self.total)
        if self.buffer and (len(self.buffer) >= self.part_videos or self.bytes >= 256 << 20
                            or time.monotonic() - self.last >= self.part_seconds):
            self.flush()

    def flush(self, force: bool = False) -> None:
        if not (self.buffer or (force and self.unsaved_failed)):
            return
        path = self.pdir / f"part-{self.rank:03d}-{self.part:06d}.h5"
        write_part(path, self.provenance, self.classes, self.buffer, failed=self.unsaved_failed)
        self.unsaved_failed.clear()
        logger.debug("wrote %s (%d videos)", path, len(self.buffer))
        self.part += 1
        self.last = time.monotonic()
        self.bytes = 0
        self.buffer.clear()

