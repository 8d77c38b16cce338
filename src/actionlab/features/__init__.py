"""actionlab.features stage."""
