"""A bounded atheris (libFuzzer) run over the client-message parser; fuzz/fuzz_parser.py holds the harness."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

from testbed.harness import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (pip install atheris)"
)

RUNS = 300_000
MAX_SECONDS = 20


def test_bounded_atheris_run_over_the_parser_finds_no_crash(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "seeds", corpus)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.fuzz_parser",
            f"-runs={RUNS}",
            f"-max_total_time={MAX_SECONDS}",
            f"-dict={ROOT / 'fuzz' / 'protocol.dict'}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS + 60,
        cwd=ROOT,  # `fuzz` is found from the checkout, installed or not; artifacts go to tmp_path
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr and not list(tmp_path.glob("crash-*"))
