"""actionlab.data stage."""
