"""Models: temporal heads over cached features and end-to-end video networks, one registry."""

from actionlab.models.registry import create_model, list_models, model_kind, register_model

__all__ = ["create_model", "list_models", "model_kind", "register_model"]
