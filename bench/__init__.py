"""Benchmarks: `python -m bench.ws_fanout`."""
