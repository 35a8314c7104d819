"""GRU-ow command-line interface (``gruow``). The domain code lives in the packages
``data``, ``forecaster``, ``strategies`` and ``backtests``; this package only wires them."""
__version__ = "0.1.0"
