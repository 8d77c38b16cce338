"""Typed configuration: frozen dataclasses for each stage, dotted overrides, YAML round-trip.

YAML is only a record of a resolved config saved into a run directory; configuration is built in
Python (presets below) or changed with dotted overrides such as ``optim.lr=0.01``, which is also the
language of sweeps (any field can be swept).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actionlab.config_io import (  # re-exported: the config API is actionlab.config
    apply_overrides,
    flatten,
    from_dict,
    load_yaml,
    read_yaml,
    save_yaml,
    to_dict,
)

__all__ = [
    "ClipConfig", "ExtractConfig", "FLOW_ALGORITHMS", "FlowConfig", "FrameConfig", "InferenceConfig", "ModelConfig",
    "OptimConfig", "SequenceConfig", "TrainConfig", "VIEWS", "apply_overrides", "flatten", "from_dict", "load_yaml",
    "read_yaml", "recorded_extract", "recorded_flow", "resolved_inference", "save_yaml", "to_dict",
]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


MODALITY_NAMES = ("rgb", "flow", "diff")
"""What a 2D CNN reads at each sampled position (:mod:`actionlab.features.modalities` holds one module each)."""
FLOW_ALGORITHMS = ("dis", "farneback", "tvl1", "mv")
VIEWS = ("centre", "full")
"""What of a frame the 2D backbone sees (``ExtractConfig.view``)."""
POOLS = ("avg", "grid", "grid_wide")
"""How a 2D backbone pools a frame's feature map (``ExtractConfig.pool``): ``avg``, the global average of the last
map (every backbone); ``grid``, a 2x2 grid of averages of the last block's map before its final 1x1 convolution
(MobileNetV2: 4 x 320 = 1280-d, the size of ``avg``); ``grid_wide``, a 2x2 grid of averages of the last map
(MobileNetV2: 4 x 1280 = 5120-d)."""


@dataclass(frozen=True)
class FlowConfig:
    """Dense optical flow as a modality (``extract --modality flow``): how it is computed and stored."""

    algorithm: str = "farneback"
    """OpenCV estimator: ``farneback`` (the default), ``dis`` (DIS: 8-12x faster flow, 3-4x faster extraction,
    but it fills flat, noisy regions such as a plain wall or the sky with motion as large as the real one), or
    ``tvl1`` (needs OpenCV's contrib build, ``cv2.optflow``); or ``mv``: no estimator, the block motion vectors
    the decoder already has (XviD/MPEG-4 Part 2, H.264; :mod:`actionlab.features.motion_vectors`)."""
    preset: str = "fast"
    """DIS preset: ``ultrafast``, ``fast`` or ``medium`` (only for ``algorithm=dis``)."""
    bound: float = 20.0
    """Flow is clipped to ``[-bound, bound]`` pixels and quantised to uint8 (TSN / denseflow: 20)."""
    stack: int = 5
    """L: consecutive flow fields per sampled position, 2L channels (x and y of each) into the network (TSN)."""
    size: int = 0
    """Short side frames are decoded to and flow is computed at; 0 = the backbone's resize (256 for
    mobilenet_v2). Flow magnitudes are in pixels of this size."""
    step: int = 1
    """Frames between the two images of each field: the L fields of a position run over frames ``t, t+step,
    ..., t+L*step``, each the motion over ``step`` frames. 1 = consecutive frames (TSN). ``stack=1, step=5``
    estimates one field over the 5 frames the default's five fields cover, a fifth of the estimator's work.
    Not for ``algorithm=mv`` (its vectors are per frame)."""
    downscale: int = 1
    """The estimator runs on the frames shrunk by this factor (area resampling); its field is resized back to
    ``flow.size`` and its vectors multiplied by the factor. 2 computes Farneback on a quarter of the pixels
    (measured: 0.4x the CPU time per video, and a less accurate flow stream); the stored flow keeps its size and
    units. Not for ``algorithm=mv``."""
    encoding: str = "image"
    """How ``output=features`` shows the L fields to the ImageNet CNN. ``image``: their sum (the displacement
    over L frames), less its median over the frame (camera motion), drawn as a 3-channel image (x, y and
    magnitude, +-bound mapped to [0, 1]) that the CNN's own RGB convolution reads. ``stack``: the 2L fields as
    channels of a first convolution whose RGB kernels are averaged and replicated (TSN's cross-modality
    initialisation), made for fine-tuning: a frozen CNN sees only the sum of all 2L channels there, so a motion
    along x = -y is invisible to it."""
    output: str = "features"
    """``features``: per-step features of the ImageNet 2D CNN over the flow (see ``encoding``), for temporal
    models; ``raw``: the quantised flow itself ``(T, 2L, H, W)`` uint8, for video networks."""

    def __post_init__(self) -> None:
        _check_choice("flow.algorithm", self.algorithm, FLOW_ALGORITHMS)
        _check_choice("flow.preset", self.preset, ("ultrafast", "fast", "medium"))
        _check_choice("flow.output", self.output, ("features", "raw"))
        _check_choice("flow.encoding", self.encoding, ("image", "stack"))
        if self.output == "raw" and self.encoding != "image":
            raise ValueError("flow.encoding is how output=features shows flow to the CNN; output=raw stores the "
                             "fields themselves: leave flow.encoding unset")
        if self.preset != "fast" and self.algorithm != "dis":
            raise ValueError(f"flow.preset is DIS's; flow.algorithm is {self.algorithm!r}: add flow.algorithm=dis "
                             "(--flow-algorithm dis) or leave the preset unset")
        if self.bound <= 0 or min(self.stack, self.step, self.downscale) < 1 or self.size < 0:
            raise ValueError(f"flow.bound must be > 0, flow.stack, flow.step and flow.downscale >= 1 and flow.size "
                             f">= 0, got {self.bound}, {self.stack}, {self.step}, {self.downscale}, {self.size}")
        if (self.downscale != 1 or self.step != 1) and self.algorithm == "mv":
            raise ValueError("flow.step and flow.downscale set what an estimator reads; flow.algorithm=mv reads the "
                             "decoder's per-frame motion vectors: leave them unset")


@dataclass(frozen=True)
class ExtractConfig:
    """How frames become cached feature vectors (stage 1 of the two-stage pipeline)."""

    backbone: str = "mobilenet_v2"
    """Name of a 2D backbone (``actionlab.features.backbones.list_backbones()``)."""
    weights: str = "imagenet"
    """``imagenet`` (resolved offline), a path to a ``.pth`` file or fine-tuned checkpoint, or ``none``."""
    sampler: str = "uniform"
    """Which frames: ``all``, ``stride`` (every k-th) or ``uniform`` (N evenly spaced)."""
    num_frames: int = 25
    """Frames per video for the ``uniform`` sampler (UCF-101 practice: 25)."""
    stride: int = 1
    """k for the ``stride`` sampler."""
    dtype: str = "float16"
    """Storage dtype of features: ``float16`` or ``float32``."""
    batch_size: int = 64
    """Frames per inference batch."""
    workers: int = 2
    """Decoding processes running ahead of inference (0 decodes in the main process)."""
    engine: str = "auto"
    """Inference engine: ``auto`` (ONNX Runtime on CPU when installed, PyTorch otherwise), ``onnx`` or ``torch``."""
    predictions: bool = False
    """Also store per-frame class scores from the backbone's head (for a fine-tuned backbone's baseline)."""
    view: str = "auto"
    """What of each frame (or flow image) the 2D CNN sees: ``full``, the whole frame with its short side at
    ``crop`` (the CNN pools over any size; 1.3x the pixels of a 4:3 frame, 1.8x of a 16:9 one), or ``centre``,
    the square centre crop its ImageNet weights were evaluated with (short side ``resize``, e.g. 256, then
    ``crop``, e.g. 224: a 16:9 video loses 45% of its width, a 4:3 one 34%, and with it what happens at the
    sides). ``auto`` (the default) is ``full`` for RGB frames and ``centre`` for flow: the props and limbs at the
    sides tell RGB actions apart, while flow's motion is mostly in the middle and the whole frame's still margins
    dilute it in the pooled features (see :attr:`resolved_view`). Stores written before this field existed are
    ``centre``."""
    modality: str = "rgb"
    """What each sampled position becomes: ``rgb`` (the frame), ``flow`` (optical flow from that frame on, see
    ``flow``) or ``diff`` (the differences of the next four frames as one image: motion at RGB's cost,
    :mod:`actionlab.features.diff`)."""
    flow: FlowConfig = field(default_factory=FlowConfig)
    """Optical flow settings (``modality=flow`` only)."""
    pool: str = "avg"
    """How the backbone pools its last feature map into a frame's vector: ``avg``, one global average (every
    backbone; the default), or a 2x2 grid of averages that keeps where things are (MobileNetV2 only): ``grid``
    over the 320-channel last block (1280-d, the size of ``avg``) or ``grid_wide`` over the 1280-channel map
    (5120-d: 4x the store and the temporal model's input). See :data:`POOLS`."""

    def __post_init__(self) -> None:
        _check_choice("modality", self.modality, MODALITY_NAMES)
        _check_choice("view", self.view, ("auto", *VIEWS))
        _check_choice("pool", self.pool, POOLS)
        if self.pool != "avg" and self.predictions:
            raise ValueError("predictions (the backbone head's class scores) need pool=avg: the head reads the "
                             "global average, not a grid")
        if self.modality != "flow" and self.flow != FlowConfig():
            raise ValueError("flow settings apply to modality=flow only (extract --modality flow)")
        if self.modality != "rgb" and self.predictions:
            raise ValueError(f"predictions (the backbone head's class scores) are for RGB frames, not "
                             f"modality={self.modality}")
        _check_choice("sampler", self.sampler, ("all", "stride", "uniform"))
        _check_choice("dtype", self.dtype, ("float16", "float32"))
        _check_choice("engine", self.engine, ("auto", "onnx", "torch"))
        if self.num_frames < 1 or self.stride < 1 or self.batch_size < 1 or self.workers < 0:
            raise ValueError("num_frames, stride and batch_size must be >= 1 and workers >= 0")

    @property
    def resolved_view(self) -> str:
        """:attr:`view` with ``auto`` resolved: ``full`` for ``modality=rgb``, ``centre`` for motion (``flow``,
        ``diff``)."""
        if self.view != "auto":
            return self.view
        return "full" if self.modality == "rgb" else "centre"


@dataclass(frozen=True)
class ModelConfig:
    """Which network and its size. A model is built with the fields its builder takes; setting a field it does
    not take (away from the default) is an error that names the models taking it."""

    name: str = "lstm"
    """A registered model (``actionlab.models.list_models()``)."""
    hidden_size: int = 64
    """Width of the recurrent/attention/conv temporal layers."""
    num_layers: int = 1
    """Stacked temporal layers (the LSTM ablation study compares 1, 2 and 3)."""
    fc_size: int = 0
    """Linear layer with a nonlinearity between the temporal layers and the output (the course project's starter
    code had 512); 0 = none."""
    bidirectional: bool = False
    batch_norm: bool = False
    """Batch normalization between layers (the LSTM ablation study, section 3)."""
    dropout: float = 0.5
    """Dropout probability before the linear layers and between stacked layers."""
    input_dropout: float = 0.8
    """Recurrent models: dropout on the input features (before the projection)."""
    input_proj: int = 128
    """Recurrent models: a linear projection of the input features to this width before the first recurrent
    layer; 0 = none (the recurrent layer reads the features as they are)."""
    input_deltas: bool = True
    """Recurrent models: each step also reads how the features changed since the previous step
    (``[x_t, x_t - x_(t-1)]``), a cheap motion cue that tells an action from the same frames played backwards.
    With truncated BPTT the first step of each chunk sees no change."""
    backbone: str = "mobilenet_v2"
    """2D backbone of end-to-end per-frame models (LRCN, fusion)."""
    freeze_backbone: bool = True
    """LRCN/fusion: keep the 2D backbone frozen."""
    pretrained: bool = False
    """End-to-end models: start from locally available pretrained weights."""
    width: float = 1.0
    """Channel multiplier of the convolutional video networks (``c3d``, ``c3d_small``, ``r2plus1d_18`` and Karpathy
    et al.'s ``single_frame_cnn``, ``early_fusion``, ``late_fusion``, ``slow_fusion``): 0.25 is about 16x cheaper
    to train, for CPUs and small datasets."""
    train_layers: str = "top"
    """Frame classifiers being fine-tuned: ``top`` (the last feature block and the classifier) or ``all``."""

    def __post_init__(self) -> None:
        if self.num_layers < 1 or self.hidden_size < 1 or self.fc_size < 0:
            raise ValueError("num_layers and hidden_size must be >= 1 and fc_size >= 0")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.input_dropout < 1.0):
            raise ValueError(f"model.dropout and model.input_dropout must be in [0, 1), got {self.dropout}, "
                             f"{self.input_dropout}")
        if self.input_proj < 0:
            raise ValueError(f"model.input_proj must be >= 0, got {self.input_proj}")
        if self.width <= 0:
            raise ValueError(f"model.width must be > 0, got {self.width}")
        _check_choice("model.train_layers", self.train_layers, ("top", "all"))


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer, learning-rate schedule and gradient handling."""

    name: str = "adam"
    """``sgd`` (momentum), ``adam``, ``adamw`` or ``rmsprop``."""
    lr: float = 1e-3
    momentum: float = 0.9
    """For ``sgd`` and ``rmsprop``."""
    weight_decay: float = 1e-3
    """L2 penalty on weight matrices and kernels (the course project's ablation: 5e-4 helped)."""
    schedule: str = "constant"
    """``constant``, ``step`` or ``cosine``."""
    step_size: int = 10
    """Epochs between decays for the ``step`` schedule."""
    gamma: float = 0.1
    """Decay factor for the ``step`` schedule."""
    warmup_epochs: float = 0.0
    """Linear warm-up, in (fractional) epochs."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 disables."""
    decay_bias_and_norm: bool = False
    """Also apply weight decay to biases and normalization parameters (Chainer's ``WeightDecay`` hook, the LSTM ablation study)."""

    def __post_init__(self) -> None:
        _check_choice("optim.name", self.name, ("sgd", "adam", "adamw", "rmsprop"))
        _check_choice("optim.schedule", self.schedule, ("constant", "step", "cosine"))
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_epochs < 0:
            raise ValueError(f"optim.lr must be > 0 and optim.weight_decay, optim.grad_clip, optim.warmup_epochs "
                             f">= 0, got {self.lr}, {self.weight_decay}, {self.grad_clip}, {self.warmup_epochs}")
        if not 0.0 <= self.momentum < 1.0 or self.gamma <= 0 or self.step_size < 1:
            raise ValueError(f"optim.momentum must be in [0, 1), optim.gamma > 0 and optim.step_size >= 1, got "
                             f"{self.momentum}, {self.gamma}, {self.step_size}")


@dataclass(frozen=True)
class SequenceConfig:
    """How feature sequences are cut for training temporal models."""

    seq_len: int = 16
    """Training sequence length in steps; 0 = the whole video."""
    sampling: str = "spread"
    """How a training sequence is cut: ``spread`` (``seq_len`` steps spread over the whole video, one at a
    random place in each of ``seq_len`` equal segments, TSN-style: the model sees the whole action) or
    ``segment`` (a random contiguous run of ``seq_len`` steps, the course project's recipe)."""
    short_policy: str = "stretch"
    """``segment`` sampling of videos shorter than ``seq_len``: ``stretch`` (steps repeated in time order),
    ``reverse_repeat`` (played back and forth: part of the motion runs backwards), ``loop`` or ``last``."""
    tbptt: int = 0
    """Truncated BPTT chunk length (hidden state carried, gradients cut between chunks); 0 = full BPTT."""
    loss_weighting: str = "last"
    """Per-step loss weights: ``last`` (the last step, which has seen the whole sequence), ``uniform`` or
    ``linear`` ((t+1)/T, toward later steps)."""

    def __post_init__(self) -> None:
        _check_choice("sequence.short_policy", self.short_policy, ("stretch", "reverse_repeat", "loop", "last"))
        _check_choice("sequence.sampling", self.sampling, ("spread", "segment"))
        _check_choice("sequence.loss_weighting", self.loss_weighting, ("uniform", "linear", "last"))
        if self.seq_len < 0 or self.tbptt < 0:
            raise ValueError("seq_len and tbptt must be >= 0")


@dataclass(frozen=True)
class InferenceConfig:
    """How a whole video is classified from per-step or per-clip predictions."""

    mode: str = "spread"
    """``spread`` (``window`` evenly spaced steps over the whole video: the test-time twin of
    ``sequence.sampling=spread``), ``full`` (the whole sequence at once), ``windows`` (strided windows of
    consecutive steps, averaged in log space) or ``vote`` (majority vote of those windows)."""
    window: int = 0
    """Steps per window (``spread``, ``windows``, ``vote``); 0 = ``sequence.seq_len``, what the model trained on."""
    stride: int = 8
    """Step between window starts."""
    step_weighting: str = "last"
    """How per-step predictions inside a window combine: ``uniform``, ``linear`` (toward later steps) or ``last``."""

    def __post_init__(self) -> None:
        _check_choice("inference.mode", self.mode, ("spread", "full", "windows", "vote"))
        _check_choice("inference.step_weighting", self.step_weighting, ("uniform", "linear", "last"))
        if self.window < 0 or self.stride < 1:
            raise ValueError("inference.window must be >= 0 (0 = sequence.seq_len) and inference.stride >= 1")


@dataclass(frozen=True)
class ClipConfig:
    """Raw clips for end-to-end video networks."""

    clip_len: int = 16
    """Frames per clip."""
    frame_interval: int = 2
    """Temporal stride between a clip's frames (``sampling=dense``)."""
    sampling: str = "dense"
    """Which frames make a clip: ``dense`` (``clip_len`` frames ``frame_interval`` apart, at a random start in
    training and evenly spaced starts at test) or ``spread`` (``clip_len`` frames over the whole video, one per
    equal segment, jittered in training: every clip sees the whole action, whatever the video's length)."""
    size: int = 112
    """Square crop side after resizing (C3D/R(2+1)D: 112)."""
    resize: int = 128
    """Short side frames are decoded to before cropping."""
    keep_aspect: bool = True
    """``false``: crops are taken from the whole frame squeezed to ``resize x resize`` instead of from the frame
    with its short side at ``resize``, so a square crop sees the whole width of a wide (16:9) video: for small
    clips, where a centre crop would cut off what happens at the sides."""
    test_clips: int = 3
    """Clips averaged per video at test time (evenly spaced)."""
    test_crops: int = 1
    """Spatial crops per clip at test time: 1 (centre) or 3 (left/centre/right)."""
    augment: bool = True
    """Random resized crop, flip and colour jitter, the same for every frame of a clip."""
    flip: bool = False
    """Random horizontal flips when augmenting; off by default because a flip swaps left/right-dependent
    classes (synthetic MoveLeft/MoveRight, TurnClockwise/TurnCounterClockwise). UCF-101 practice: on."""
    hue: float = 0.0
    """Augmentation: a random hue shift in ``[-hue, hue]`` turns of the colour wheel per clip (0.5: any hue),
    for datasets whose scenes' colours would otherwise be a shortcut; 0 = off."""
    grayscale: float = 0.0
    """Augmentation: probability that a training clip is made grey."""
    cache_frames: bool = False
    """Keep each video's decoded frames (short side ``resize``) in memory after their first use, so later
    epochs only crop: for datasets that fit in RAM (about ``frames x resize^2 x 4`` bytes for 4:3 video)."""

    def __post_init__(self) -> None:
        if min(self.clip_len, self.frame_interval, self.size, self.test_clips) < 1 or self.resize < self.size:
            raise ValueError("clip fields must be >= 1 and resize >= size")
        if not (0.0 <= self.hue <= 0.5 and 0.0 <= self.grayscale <= 1.0):
            raise ValueError(f"clip.hue must be in [0, 0.5] and clip.grayscale in [0, 1], got {self.hue}, "
                             f"{self.grayscale}")
        _check_choice("clip.sampling", self.sampling, ("dense", "spread"))
        if self.sampling == "spread" and self.frame_interval != ClipConfig.frame_interval:
            raise ValueError(f"clip.frame_interval={self.frame_interval} does not apply to clip.sampling=spread "
                             "(the frames are spread over the whole video); leave it unset or use "
                             "clip.sampling=dense")
        if self.test_crops not in (1, 3):
            raise ValueError(f"clip.test_crops must be 1 or 3, got {self.test_crops}")


@dataclass(frozen=True)
class FrameConfig:
    """Single frames for fine-tuning a 2D frame classifier (``model.name=frame_classifier``)."""

    per_video: int = 4
    """Training frames per video per epoch: one random frame in each of this many equal segments."""
    test_per_video: int = 5
    """Evaluation frames per video: the segment centres; their probabilities are averaged per video."""
    crop: int = 0
    """Square crop side; 0 = the backbone's ImageNet crop (e.g. 224), resized in proportion."""
    flip: bool = True
    """Random horizontal flips in training (off for datasets whose classes are left/right mirror images)."""

    def __post_init__(self) -> None:
        if self.per_video < 1 or self.test_per_video < 1 or self.crop < 0:
            raise ValueError("frames.per_video and frames.test_per_video must be >= 1 and frames.crop >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; saved as ``config.yaml`` in its run directory."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    frames: FrameConfig = field(default_factory=FrameConfig)
    epochs: int = 60
    batch_size: int = 32
    patience: int = 15
    """Early stopping: epochs without validation-loss improvement before stopping (``best.pt``, the checkpoint
    that is evaluated, is the best validation epoch); 0 = off."""
    seed: int = 0
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ..."""
    amp: bool = True
    """Mixed precision on CUDA (ignored on CPU)."""
    sync_bn: bool = True
    """Under DDP on CUDA, batch norm computes its statistics over the global batch (``SyncBatchNorm``); on CPU
    (``gloo``) torch has no such layer and each process normalizes with its own batch."""
    num_workers: int = 0
    """DataLoader worker processes (clip models decode in them)."""
    val_split: str = "val"
    """Split used for validation/early stopping; falls back to ``test`` when the data has no ``val``."""
    eval_split: str = "test"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0 or self.num_workers < 0 or self.seed < 0:
            raise ValueError(f"epochs and batch_size must be >= 1; patience, num_workers and seed >= 0 (got "
                             f"epochs={self.epochs}, batch_size={self.batch_size}, patience={self.patience}, "
                             f"num_workers={self.num_workers}, seed={self.seed})")


def resolved_inference(cfg: TrainConfig) -> InferenceConfig:
    """``cfg.inference`` with ``window=0`` replaced by the training sequence length (16 for whole videos)."""
    if cfg.inference.window:
        return cfg.inference
    return dataclasses.replace(cfg.inference, window=cfg.sequence.seq_len or 16)


def recorded_flow(flow: Any) -> Any:
    """Flow settings as a store or run recorded them, read today: those written before ``flow.encoding``
    existed fed the CNN stacked fields (``stack``, the only encoding then); before ``flow.step`` and
    ``flow.downscale`` existed, fields were per frame and full size (1, 1)."""
    if not isinstance(flow, Mapping):
        return flow
    flow = {"step": 1, "downscale": 1, **flow}  # added later; before, every field was per frame, at full size
    if "encoding" not in flow and flow.get("output", "features") == "features":
        return {**flow, "encoding": "stack"}
    return flow


def recorded_extract(data: Mapping[str, Any] | None) -> ExtractConfig:
    """The :class:`ExtractConfig` a store or run recorded (``{}`` or None: the defaults)."""
    if not data:
        return ExtractConfig()
    return from_dict(ExtractConfig, {"view": "centre",  # written before ``view`` existed: the centre crop
                                     **data, **({"flow": recorded_flow(data["flow"])} if "flow" in data else {})})
