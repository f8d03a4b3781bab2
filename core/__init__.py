"""The message vocabulary and primitives every layer builds on: settings, protocol and records, clock, bus and store.

Nothing here imports another package of the app; `lint-imports` keeps it the bottom layer.
"""
