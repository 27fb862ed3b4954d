"""Benchmarks: run each as `python -m benchmarks.NAME`; results go to BENCHMARKS.md."""
