"""A 2D frame classifier: an ImageNet CNN fine-tuned on single frames of the training videos.

The first stage of the two-stage pipeline: train the top layers (``train_layers="top"``: the last feature
block and the classifier; the rest frozen with its BatchNorm statistics) or all of them on frames, then cache
its features with ``actionlab extract --weights RUN/backbone.pt``. Input ``(B, 3, H, W)`` normalized with the
backbone's ImageNet statistics; output ``(B, K)`` logits. The module is the backbone itself, so its state dict
loads as ``create_backbone(name, weights=...)``.
"""

from __future__ import annotations

from actionlab.features.backbones import Backbone, create_backbone, get_backbone_spec
from actionlab.models.registry import register_model, with_normalization


@register_model("frames", normalization=None)
def frame_classifier(num_classes: int, backbone: str = "mobilenet_v2", pretrained: bool = True,
                     train_layers: str = "top") -> Backbone:
    """2D CNN on single frames (``backbone``, ImageNet-initialized when ``pretrained``), fine-tuned."""
    model = create_backbone(backbone, weights="imagenet" if pretrained else "none", num_classes=num_classes)
    model.set_trainable(train_layers)
    pre = get_backbone_spec(backbone).preprocess
    return with_normalization(model, pre.mean, pre.std)
