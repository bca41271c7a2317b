"""CT scan analysis service: a Flask API, a PyTorch classifier and pluggable stores."""

__version__ = "3.0.0"
