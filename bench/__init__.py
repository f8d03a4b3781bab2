"""Benchmarks of the hub, each printing JSON figures: `python -m bench.<name>` (bench.ws_fanout, bench.soak...).

They run from the checkout, or from anywhere once the project is installed (`pip install -e .`); the
stand-ins they share with the tests live in `testbed/`, and their statistics in `bench/figures.py`.
"""
