"""forecaster package (under construction)."""
