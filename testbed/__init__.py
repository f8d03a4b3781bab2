"""Stand-ins that tests and benchmarks share: the real app in a subprocess, Redis, PostgreSQL, a stand-in HF Hub.

Nothing in the server imports this package (`lint-imports` checks it); it needs the test requirements.
"""
