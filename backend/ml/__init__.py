"""The CT classifier: network, shared preprocessing, serving, training and evaluation."""
