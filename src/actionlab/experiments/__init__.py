"""actionlab.experiments stage."""
