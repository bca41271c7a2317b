"""CT slice analysis service: a Flask API, a PyTorch classifier and a pluggable store."""
