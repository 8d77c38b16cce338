"""Torch datasets over a :class:`~actionlab.data.manifest.Manifest`: single frames and clips.

Each item's randomness comes from ``np.random.default_rng([seed, epoch, index])``, so an item is the same
whatever the number of DataLoader workers or the order they ask in; :meth:`set_epoch` changes it per epoch
(call it in every worker-visible copy before iterating, i.e. before creating the epoch's iterator).
A video that cannot be decoded raises :class:`~actionlab.data.video.decode.VideoDecodeError` naming the file;
nothing is skipped silently.

- :class:`FrameDataset`: ``(frame (3, H, W) float32, label, video_index)``; ``frames_per_video`` items per
  video, frame ``k`` drawn from the ``k``-th of ``frames_per_video`` equal segments (TSN sampling; segment
  centres when ``train=False``). For fine-tuning a 2D backbone on single frames.
- :class:`ClipDataset`: ``(clip (C, T, H, W) float32, label, video_index)``. Train mode: one random clip per
  video with clip-consistent augmentation. Test mode: ``num_clips`` evenly spaced clips x ``crops`` spatial
  crops per video, flattened so that each item is one clip; ``video_index`` (and :attr:`item_video`)
  say which video to aggregate into.

``cache_frames=True`` keeps every video's decoded frames (at the decode size) in memory after its first use,
so later epochs only index and crop: for datasets that fit in RAM (a 40x53 frame is 6.4 kB; 350 videos of
60 frames, 134 MB). A cache filled lazily lives in the process that fills it; call :meth:`fill_cache` before
DataLoader workers fork so that they share one copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from actionlab.config import ClipConfig
from actionlab.data.manifest import Manifest
from actionlab.data.sampling import clip_indices, tsn_indices
from actionlab.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    ClipEvalTransform,
    ClipTrainTransform,
    as_tchw,
)
from actionlab.data.video.decode import Size, VideoDecodeError, VideoReader
from actionlab.types import VideoRecord

logger = logging.getLogger(__name__)

FrameTransform = Callable[[np.ndarray, np.random.Generator], torch.Tensor]
"""``(frame (H, W, 3) uint8, rng) -> (3, h, w)`` float tensor (e.g. ``FrameTrainTransform``)."""


def _item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class _VideoDataset(Dataset):
    """Shared plumbing: the split's records, labels, epochs and error reporting."""

    def __init__(self, manifest: Manifest, split: str, seed: int, epoch: int, decode_size: Size,
                 cache_frames: bool = False) -> None:
        self.manifest = manifest
        self.split = split
        self.records: list[VideoRecord] = manifest.split(split)
        if not self.records:
            raise ValueError(f"split {split!r} of the manifest (root {manifest.root}) has no videos; "
                             f"splits with videos: {manifest.splits()}")
        self.labels = np.array([r.label_index for r in self.records], dtype=np.int64)
        """``(V,)`` label of each video of the split."""
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.decode_size = decode_size
        self.cache_frames = cache_frames
        self._frames: dict[int, np.ndarray] = {}  # video -> (N, H, W, 3) uint8, with cache_frames

    @property
    def cache_bytes(self) -> int:
        """Bytes of decoded frames held by this copy of the dataset (``cache_frames``)."""
        return sum(f.nbytes for f in self._frames.values())

    @property
    def num_videos(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Draw new random frames/clips/augmentations: items derive their generator from (seed, epoch, index)."""
        self.epoch = int(epoch)

    def cache_estimate(self) -> int:
        """Bytes ``cache_frames`` would hold, from the manifest's frame counts (4:3 frames at the decode size)."""
        frames = sum(max(r.num_frames, 0) for r in self.records)
        if isinstance(self.decode_size, tuple):
            return frames * self.decode_size[0] * self.decode_size[1] * 3
        side = self.decode_size or 240
        return frames * side * (side * 4 // 3) * 3

    def fill_cache(self) -> int:
        """With ``cache_frames``: decode every video now (before DataLoader workers fork and share it
        copy-on-write); returns the bytes held."""
        if self.cache_frames:
            for v in range(self.num_videos):
                self._cached(v, item=-1)
        return self.cache_bytes

    def _cached(self, v: int, item: int) -> np.ndarray:
        """Every frame of video ``v``, decoded in one sequential pass on first use."""
        frames = self._frames.get(v)
        if frames is None:
            frames = self._frames[v] = self._decode(v, np.arange, item)
        return frames

    def _load(self, v: int, choose: Callable[[int], np.ndarray], item: int) -> np.ndarray:
        """The frames ``choose(num_frames)`` of video ``v``: ``(N, H, W, 3)`` uint8."""
        if not self.cache_frames:
            return self._decode(v, choose, item)
        frames = self._cached(v, item)
        return frames[choose(len(frames))]

    def _decode(self, v: int, choose: Callable[[int], np.ndarray], item: int) -> np.ndarray:
        record = self.records[v]
        path = self.manifest.abspath(record)
        idx = None
        try:
            with VideoReader(path, size=self.decode_size) as reader:
                n = reader.info.num_frames
                if record.num_frames > 0 and record.num_frames != n:
                    logger.warning("%s: the manifest says %d frames, the file has %d; re-run `actionlab index`",
                                   path, record.num_frames, n)
                if n < 1:
                    raise VideoDecodeError(path, "the video has no decodable frames")
                idx = choose(n)
                return reader.get_frames(idx)
        except VideoDecodeError:
            raise
        except Exception as exc:  # any other failure still names the file and the item
            where = f"frames {idx.tolist()}" if idx is not None else "opening"
            raise VideoDecodeError(path, f"{type(exc).__name__}: {exc} ({self.split} item {item}, {where})") from exc


class FrameDataset(_VideoDataset):
    """Single frames of the videos of one split: ``(frame (3, H, W) float32, label, video_index)``.

    Args:
        manifest, split: the videos (``manifest.split(split)``, in manifest order).
        frames_per_video: items per video; item ``i`` is frame ``i % frames_per_video`` of video
            ``i // frames_per_video``, drawn from that segment of the video.
        transform: ``(frame (H, W, 3) uint8, rng) -> (3, h, w)`` (``FrameTrainTransform`` /
            ``FrameEvalTransform``); ``None`` gives the frame as float ``[0, 1]`` ``(3, H, W)``.
        seed, epoch: the per-item generator is ``default_rng([seed, epoch, index])``.
        train: random frame within each segment (``True``) or the segment centre (``False``).
        decode_size: short side frames are decoded to (e.g. the transform's ``resize``); ``None`` = native.
    """

    def __init__(self, manifest: Manifest, split: str = "train", frames_per_video: int = 1,
                 transform: FrameTransform | None = None, seed: int = 0, epoch: int = 0, train: bool = True,
                 decode_size: int | None = None) -> None:
        super().__init__(manifest, split, seed, epoch, decode_size)
        if frames_per_video < 1:
            raise ValueError(f"frames_per_video must be >= 1, got {frames_per_video}")
        self.frames_per_video = frames_per_video
        self.transform = transform
        self.train = train

    def __len__(self) -> int:
        return self.num_videos * self.frames_per_video

    def video_index(self, index: int) -> int:
        return index // self.frames_per_video

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        v, k = divmod(index, self.frames_per_video)
        rng = _item_rng(self.seed, self.epoch, index)

        def choose(n: int) -> np.ndarray:
            return tsn_indices(n, self.frames_per_video, rng if self.train else None)[k:k + 1]

        frame = self._load(v, choose, index)[0]  # (H, W, 3)
        x = self.transform(frame, rng) if self.transform is not None else as_tchw(frame)[0]
        return x, int(self.labels[v]), v


class ClipDataset(_VideoDataset):
    """Clips of the videos of one split: ``(clip (C, T, size, size) float32, label, video_index)``.

    Train mode (``train=True``): one item per video, a random clip (``clip_indices`` with the item's
    generator) and, when ``augment``, :class:`ClipTrainTransform` (random resized crop, optional flip,
    colour jitter; the same for every frame). Test mode: ``num_clips`` evenly spaced clips x ``crops``
    (1 centre, 3 left/centre/right) per video; item ``i`` is video ``i // (num_clips * crops)``, clip
    ``(i // crops) % num_clips``, crop ``i % crops``.

    Frames are decoded with their short side at ``resize``, then cropped to ``size``. ``T = clip_len``;
    the clip covers ``(clip_len - 1) * frame_interval + 1`` frames (short videos are padded by the sampler), or
    the whole video with ``sampling="spread"``.
    """

    def __init__(self, manifest: Manifest, split: str = "train", clip_len: int = 16, frame_interval: int = 2,
                 size: int = 112, resize: int = 128, num_clips: int = 1, train: bool = True, seed: int = 0,
                 epoch: int = 0, crops: int = 1, augment: bool = True, flip: bool = False,
                 mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD,
                 cache_frames: bool = False, hue: float = 0.0, grayscale: float = 0.0,
                 sampling: str = "dense", keep_aspect: bool = True) -> None:
        # Squeezed frames come from the decoder's scaler at resize x resize: the crops are then exact slices.
        super().__init__(manifest, split, seed, epoch, decode_size=resize if keep_aspect else (resize, resize),
                         cache_frames=cache_frames)
        self.sampling = sampling
        if clip_len < 1 or frame_interval < 1 or num_clips < 1:
            raise ValueError("clip_len, frame_interval and num_clips must be >= 1")
        self.clip_len, self.frame_interval = clip_len, frame_interval
        self.size, self.resize = size, resize
        self.train = train
        self.num_clips = 1 if train else num_clips
        self.crops = 1 if train else crops
        self.augment = augment
        mean_t, std_t = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.train_transform = ClipTrainTransform(size=size, resize=resize, flip=flip, hue=hue, grayscale=grayscale,
                                                  mean=mean_t, std=std_t, keep_aspect=keep_aspect)  # type: ignore[arg-type]
        self.eval_transform = ClipEvalTransform(size=size, resize=resize, crops=self.crops, mean=mean_t, std=std_t,  # type: ignore[arg-type]
                                                keep_aspect=keep_aspect)
        self._last_clip: tuple[tuple[int, int], np.ndarray] | None = None  # last test clip (for its crops)

    @classmethod
    def from_config(cls, manifest: Manifest, split: str, cfg: ClipConfig, train: bool, seed: int = 0,
                    mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD) -> ClipDataset:
        """A dataset with the clip settings of a :class:`~actionlab.config.ClipConfig`."""
        return cls(manifest, split, clip_len=cfg.clip_len, frame_interval=cfg.frame_interval, size=cfg.size,
                   resize=cfg.resize, num_clips=cfg.test_clips, train=train, seed=seed, crops=cfg.test_crops,
                   augment=cfg.augment, flip=cfg.flip, mean=mean, std=std, cache_frames=cfg.cache_frames,
                   hue=cfg.hue, grayscale=cfg.grayscale, sampling=cfg.sampling,
                   keep_aspect=cfg.keep_aspect)

    @property
    def items_per_video(self) -> int:
        return self.num_clips * self.crops

    def __len__(self) -> int:
        return self.num_videos * self.items_per_video

    def video_index(self, index: int) -> int:
        return index // self.items_per_video

    @property
    def item_video(self) -> np.ndarray:
        """``(len(self),)`` video index of every item (to aggregate clip scores into video scores)."""
        return np.repeat(np.arange(self.num_videos, dtype=np.int64), self.items_per_video)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        v, rest = divmod(index, self.items_per_video)
        j, k = divmod(rest, self.crops)
        label = int(self.labels[v])
        if self.train:
            rng = _item_rng(self.seed, self.epoch, index)
            frames = self._load(v, lambda n: clip_indices(n, self.clip_len, self.frame_interval, 1, rng,
                                                          self.sampling)[0], index)
            if self.augment:
                return self.train_transform(frames, rng), label, v
            return self.eval_transform.crop(frames, 0), label, v
        if self._last_clip is not None and self._last_clip[0] == (v, j):
            frames = self._last_clip[1]
        else:
            frames = self._load(
                v, lambda n: clip_indices(n, self.clip_len, self.frame_interval, self.num_clips, None,
                                             self.sampling)[j], index)
            self._last_clip = ((v, j), frames)
        return self.eval_transform.crop(frames, k), label, v

