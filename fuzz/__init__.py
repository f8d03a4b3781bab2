"""Coverage-guided fuzzing harnesses (atheris, libFuzzer for Python): `python -m fuzz.fuzz_parser`."""
