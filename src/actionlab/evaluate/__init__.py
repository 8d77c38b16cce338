"""actionlab.evaluate stage."""
