"""Benchmarks: `python -m bench.ws_fanout`, `python -m bench.inference [--quick]`."""
