"""actionlab.train stage."""
