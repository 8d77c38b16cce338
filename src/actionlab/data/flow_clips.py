"""Clips of quantised optical flow for video networks (the flow stream of a two-stream network).

A video is an array ``(N, C, H, W)`` uint8: the quantised flow at ``N`` stored positions (a raw flow store,
``extract --modality flow --flow-output raw``; ``C = 2L``, channels ``x_1, y_1, ..., x_L, y_L``). A clip is
``clip_len`` positions ``frame_interval`` apart (:func:`~actionlab.data.sampling.clip_indices` over the stored
positions), scaled to ``[-1, 1]`` (``(q / 255 - 0.5) / 0.5``, zero flow at 0) and cropped like RGB clips:
one random resized crop of the frame resized to short side ``resize`` in training, the centre (or three) crops
at test. Flow is resized as an image (its values are not rescaled), the same in training and at test.

A horizontal flip mirrors the motion too: it negates the x channels. There is no colour to jitter.

Items are ``(clip (C, T, size, size) float32, label, video_index)`` like :class:`~actionlab.data.datasets.
ClipDataset`'s, so the same batch sampler, training loop and :func:`~actionlab.evaluate.inference.predict_clips`
serve both; each item's randomness comes from ``default_rng([seed, epoch, index])``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from actionlab.data.sampling import clip_indices
from actionlab.data.transforms import (
    centre_crop_box,
    crop_resize,
    random_resized_crop_box,
    resized_shape,
    three_crop_boxes,
)

FLOW_SCALE = 1.0 / (255.0 * 0.5)
FLOW_SHIFT = 1.0
"""``x = q * FLOW_SCALE - FLOW_SHIFT``: quantised flow to ``[-1, 1]``."""


class FlowClipDataset(Dataset):
    """Clips of the flow arrays ``videos`` (``(N_i, C, H, W)`` uint8 each) with their ``labels``.

    Train mode: one item per video, a random clip, random resized crop (area ``scale``), optional flip. Test
    mode: ``num_clips`` evenly spaced clips x ``crops`` (1 centre, 3 along the long side) per video; item ``i``
    is video ``i // (num_clips * crops)``.
    """

    def __init__(self, videos: Sequence[np.ndarray], labels: Sequence[int], clip_len: int = 16,
                 frame_interval: int = 1, size: int = 112, resize: int = 128, num_clips: int = 1,
                 train: bool = True, seed: int = 0, epoch: int = 0, crops: int = 1, augment: bool = True,
                 flip: bool = False, scale: tuple[float, float] = (0.4, 1.0)) -> None:
        if len(videos) != len(labels) or not len(videos):
            raise ValueError(f"need one label per video and at least one video, got {len(videos)} videos and "
                             f"{len(labels)} labels")
        if clip_len < 1 or frame_interval < 1 or num_clips < 1 or crops not in (1, 3) or not 1 <= size <= resize:
            raise ValueError("clip_len, frame_interval and num_clips must be >= 1, crops 1 or 3, 1 <= size <= resize")
        self.videos = list(videos)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.clip_len, self.frame_interval, self.size, self.resize = clip_len, frame_interval, size, resize
        self.train, self.augment, self.flip, self.scale = train, augment, flip, scale
        self.num_clips = 1 if train else num_clips
        self.crops = 1 if train else crops
        self.seed, self.epoch = int(seed), int(epoch)

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    @property
    def items_per_video(self) -> int:
        return self.num_clips * self.crops

    @property
    def item_video(self) -> np.ndarray:
        """``(len(self),)`` video index of every item."""
        return np.repeat(np.arange(self.num_videos, dtype=np.int64), self.items_per_video)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_videos * self.items_per_video

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        v, rest = divmod(index, self.items_per_video)
        j, k = divmod(rest, self.crops)
        video = self.videos[v]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        idx = clip_indices(len(video), self.clip_len, self.frame_interval, self.num_clips, rng)[j]
        x = torch.from_numpy(video[idx]).float().mul_(FLOW_SCALE).sub_(FLOW_SHIFT)  # (T, C, H, W) in [-1, 1]
        h, w = x.shape[-2:]
        rh, rw = resized_shape(h, w, self.resize)
        flip = False
        if self.train and self.augment:
            box = random_resized_crop_box(rh, rw, rng, self.scale)  # type: ignore[arg-type]
            flip = self.flip and bool(rng.random() < 0.5)  # type: ignore[union-attr]
        else:
            box = centre_crop_box(rh, rw, self.size) if self.crops == 1 else three_crop_boxes(rh, rw, self.size)[k]
        f = rh / h  # the box is in pixels of the resized frame: the same region of the stored one
        x = crop_resize(x, (box[0] / f, box[1] / f, box[2] / f, box[3] / f), (self.size, self.size))
        if flip:  # mirrored motion: x components change sign
            x = x.flip(-1)
            x[:, 0::2] = -x[:, 0::2]
        return x.permute(1, 0, 2, 3).contiguous(), int(self.labels[v]), v  # (C, T, size, size)
