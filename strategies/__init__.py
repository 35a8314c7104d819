"""strategies package (under construction)."""
