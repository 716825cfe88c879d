"""Benchmarks of tfp_flows against TensorFlow Probability's built-in flows (``make bench``)."""
