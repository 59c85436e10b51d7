"""Benchmarks of skein-jupyter on the sandbox: ``python -m bench`` from the repository root."""
