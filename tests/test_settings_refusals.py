"""Every variable the README documents, set to a bad value, stops `python app.py` in one line with exit 2.

The variables come from README.md's generated settings tables, so documenting a new one without a bad
value here (or a reason why none exists) fails `test_every_documented_variable_has_a_bad_value`.
Each bad value runs through a real `python app.py`; the starts run a few at a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.harness import MS, ROOT, free_port

README = ROOT / "README.md"
START_TIMEOUT = 120_000 * MS  # a refused start takes about 2 s of CPU; the machine may be busy
CONCURRENT_STARTS = 4

# What `python app.py` gets besides the variable under test: cheap, offline, nothing to serve if it
# ever started by mistake (the timeout would end it and the test would fail).
BASE_ENV = {
    "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "DATA_MODE": "demo", "ENABLE_UI": "0",
    "ENABLE_INFERENCE": "0", "ENABLE_SOURCES": "0", "LOG_FILE": "-", "HOST": "127.0.0.1",
}

# Variables whose bad value needs others set too (an unknown symbol is fine for the simulator alone).
ALSO_SET = {"SYMBOLS": {"DATA_MODE": "live", "ENABLE_SOURCES": "1"}}

# Free text: any value is usable, so none can be refused.
NO_BAD_VALUE = {
    "ADMIN_TOKEN": "a secret compared as given",
    "API_TOKENS": "secrets compared as given",
    "CRYPTOPANIC_TOKEN": "a provider's secret, passed on as given",
    "CRYPTOCOMPARE_KEY": "a provider's secret, passed on as given",
    "TWITTER_BEARER_TOKEN": "a provider's secret, passed on as given",
    "REDIS_PREFIX": "any text works as a Redis key prefix",
}

NOT_A_URL = "not a url"
A_FILE = "README.md"  # where a folder is expected
A_FOLDER = "inference"  # where a file is expected

BAD_VALUES = {
    # Server
    "PORT": "70000", "HOST": "not a host", "DATA_MODE": "paper", "SYMBOLS": "BTC,NOPE", "SPACE_ID": "no-owner",
    "ENABLE_UI": "maybe", "ENABLE_SOURCES": "maybe", "ENABLE_INFERENCE": "maybe", "SIMULATOR_SEED": "seven",
    "SIMULATOR_PRICES": "BTC=90000", "PRICE_INTERVAL_S": "0", "STATUS_INTERVAL_S": "-1", "MODELS_INTERVAL_S": "inf",
    "SENTIMENT_INTERVAL_S": "1m",
    # Process
    "SERVER_LOOP": "trio", "REUSE_PORT": "sometimes", "GC_THRESHOLD": "0,10,10", "GC_FREEZE": "maybe",
    "GC_PACE_MS": "-1", "GC_FULL_EVERY_S": "0", "GC_FULL_AFTER_CLOSES": "0", "GC_FREEZE_SURVIVORS": "maybe",
    # Access
    "ALLOWED_ORIGINS": "example.com",
    # Storage
    "DATA_DIR": A_FILE, "SPACE_STORAGE_DIR": A_FILE, "DATABASE_URL": "nosuchdb://host/db",
    "PRICE_RETENTION_DAYS": "0", "PRICE_1M_RETENTION_DAYS": "nan", "PRICE_PRUNE_INTERVAL_S": "0.5",
    # Cluster
    "REDIS_URL": "localhost:6379", "LEADER_LOCK_TTL_S": "1", "BACKPLANE_MAX_PENDING": "0",
    "BACKPLANE_PUBLISH_TIMEOUT_S": "0.1",
    # Inference
    "MODELS": "finbert", "DEVICE": "tpu", "INFERENCE_PRECISION": "fp64", "INFERENCE_EXCLUDE": "fp64",
    "INFERENCE_EVALSET": "no/such/evalset.jsonl", "INFERENCE_THREADS": "-1", "INFERENCE_CPU_SHARE": "1.5",
    "NEWS_RATE_PER_MIN": "0", "NEWS_SCORE_DEADLINE_MS": "0", "INFERENCE_MAX_BATCH": "-1",
    "INFERENCE_MAX_WAIT_MS": "-1", "MODEL_DIR": "no/such/models", "MODEL_LOCK": A_FOLDER, "SELF_EVALUATE": "maybe",
    "HF_HUB_OFFLINE": "maybe", "TRANSFORMERS_OFFLINE": "maybe", "HF_HUB_CACHE": A_FILE, "HF_HOME": A_FILE,
    # Limits
    "MAX_FRAME_BYTES": "12", "OUTBOX_SIZE": "1", "MESSAGES_PER_SECOND": "0", "MESSAGE_BURST": "0",
    "MAX_SYMBOLS_PER_CONNECTION": "0", "MAX_KEYWORDS": "0", "MAX_SOURCES": "0", "MAX_NEWS_BACKLOG": "-1",
    "IDLE_TIMEOUT_S": "0", "WS_PING_INTERVAL_S": "0", "WS_PER_MESSAGE_DEFLATE": "maybe", "WS_DIRECT_WRITES": "maybe",
    "MAX_CONNECTIONS": "0", "MAX_CONNECTIONS_PER_IP": "0", "TRUSTED_PROXIES": "proxy.local", "HISTORY_SIZE": "5",
    "REST_RATE_PER_S": "-1", "REST_BURST": "0", "MAX_BODY_BYTES": "10", "MAX_UPLOAD_BYTES": "10",
    "UI_QUEUE_MAX": "0", "SCORING_THREADS": "0", "SCORING_QUEUE": "-1",
    # Logging
    "LOG_LEVEL": "LOUD", "LOG_FILE": A_FOLDER, "LOG_JSON": "maybe",
    # Sources
    "MARKET_POLL_S": "0", "NEWS_POLL_S": "-5", "FNG_POLL_S": "0", "SOCIAL_POLL_S": "0",
    "COINGECKO_URL": NOT_A_URL, "BINANCE_URL": "ftp://api.binance.com", "BINANCE_WS_URL": "https://stream.binance.com",
    "BINANCE_WS_ENABLED": "maybe", "KRAKEN_URL": NOT_A_URL, "COINBASE_URL": NOT_A_URL, "COINPAPRIKA_URL": NOT_A_URL,
    "COINLORE_URL": "https://api.coinlore.net:99999/api", "FNG_URL": NOT_A_URL, "REDDIT_URL": NOT_A_URL,
    "REDDIT_SUBREDDITS": "r/Bitcoin", "NEWS_FEEDS": "https://decrypt.co/feed,ftp://feeds.example/rss",
    "CRYPTOPANIC_URL": NOT_A_URL, "CRYPTOCOMPARE_URL": NOT_A_URL, "TWITTER_URL": NOT_A_URL,
    "SOURCES_DISABLED": "coinbase;reddit", "SOURCES_USER_AGENT": "hub\r\nX-Injected: 1", "SOURCES_TIMEOUT_S": "0",
    "SOURCES_BACKOFF_S": "-1", "SOURCES_MAX_BACKOFF_S": "-1", "SOURCES_BLOCKED_RECHECK_S": "0",
    "SOURCES_BUDGET_SCALE": "-1",
    "MARKET_UP_WINDOW_S": "-1",
}


def documented_variables() -> list[str]:
    """Return the variables in README.md's generated settings tables, in order."""
    text = README.read_text(encoding="utf-8")
    tables = text[text.index("<!-- settings:begin"):text.index("<!-- settings:end -->")]
    return re.findall(r"^\| `([A-Z0-9_]+)` \|", tables, flags=re.MULTILINE)


def start_app(name: str) -> subprocess.CompletedProcess[str]:
    """Run `python app.py` with `name` set to its bad value; return how it ended."""
    env = {key: value for key, value in os.environ.items() if key not in BAD_VALUES and key not in NO_BAD_VALUE}
    env.update(BASE_ENV, PORT=str(free_port()))
    env.update(ALSO_SET.get(name, {}), **{name: BAD_VALUES[name]})
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT)


@pytest.fixture(scope="module")
def refused_starts() -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(CONCURRENT_STARTS) as pool:
        return dict(zip(BAD_VALUES, pool.map(start_app, BAD_VALUES), strict=True))


def test_every_documented_variable_has_a_bad_value() -> None:
    documented = documented_variables()
    assert len(documented) > 100  # the tables were found
    assert sorted(set(documented) - set(NO_BAD_VALUE)) == sorted(BAD_VALUES)
    assert not set(NO_BAD_VALUE) & set(BAD_VALUES)


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_app_start_with_a_bad_value_exits_2_in_one_line_naming_it(
    name: str, refused_starts: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    started = refused_starts[name]
    output = (started.stdout + started.stderr).strip()
    assert started.returncode == 2, output[-3000:]
    assert "Traceback" not in output and len(output.splitlines()) == 1, output[-3000:]
    assert output.startswith("app: invalid configuration: ") and re.search(rf"\b{name}\b", output), output


def test_fp16_where_auto_chose_the_cpu_ends_the_start_naming_the_precision() -> None:
    """DEVICE=auto is resolved only when the models are built; the refusal still takes the one-line path."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("DEVICE=auto chooses CUDA here, where fp16 is allowed")
    env = {key: value for key, value in os.environ.items() if key not in BAD_VALUES and key not in NO_BAD_VALUE}
    env.update(BASE_ENV, PORT=str(free_port()), ENABLE_INFERENCE="1", INFERENCE_PRECISION="fp16")
    started = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=START_TIMEOUT)
    output = (started.stdout + started.stderr).strip()
    assert started.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = output.splitlines()[-1]
    assert last.startswith("app: invalid configuration: INFERENCE_PRECISION=fp16 needs CUDA"), output[-3000:]
