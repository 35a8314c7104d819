"""backtests package (under construction)."""
