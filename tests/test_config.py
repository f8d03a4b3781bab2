"""The settings object: names, defaults and parsing of every variable, secrets, bad values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.config import SECTIONS, ConfigError, Settings, SourcesSection
from core.settings_base import env_name, reveal
from testbed.harness import FAST_ENV, AppProcess, free_port

SECRET = "s3cret-value-that-must-not-print"


def test_settings_from_empty_env_are_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_settings_built_directly_ignore_the_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1234")
    assert Settings().port == 7860 and Settings.from_env({"PORT": "1234"}).port == 1234


def test_settings_parse_numbers_lists_and_booleans_one_way() -> None:
    settings = Settings.from_env({
        "PORT": "8000", "SYMBOLS": "btc, eth,", "MAX_FRAME_BYTES": "4096", "IDLE_TIMEOUT_S": "2.5",
        "ENABLE_UI": "off", "LOG_JSON": "Yes", "SELF_EVALUATE": "0", "BINANCE_WS_ENABLED": "FALSE",
        "INFERENCE_EXCLUDE": "BF16,int8", "DATA_MODE": " Demo ",
    })
    assert (settings.port, settings.symbols, settings.max_frame_bytes, settings.idle_timeout_s) == (
        8000, ("BTC", "ETH"), 4096, 2.5)
    assert (settings.enable_ui, settings.log_json, settings.self_evaluate, settings.binance_ws_enabled) == (
        False, True, False, False)
    assert settings.inference_exclude == ("bf16", "int8") and settings.data_mode == "demo"


def test_settings_blank_is_unset_except_where_blank_means_none() -> None:
    settings = Settings.from_env({"PORT": "", "ENABLE_UI": " ", "MODELS": "", "TRUSTED_PROXIES": "", "LOG_FILE": ""})
    assert (settings.port, settings.enable_ui, settings.models) == (7860, True, None)
    assert settings.trusted_proxies == () and settings.log_file is None


def test_settings_zero_threads_and_batch_mean_the_default() -> None:
    settings = Settings.from_env({"INFERENCE_THREADS": "0", "INFERENCE_MAX_BATCH": "0", "LOG_FILE": "-"})
    assert (settings.inference_threads, settings.inference_max_batch, settings.log_file) == (None, None, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be a valid integer"),
        ({"MAX_FRAME_BYTES": "12"}, "MAX_FRAME_BYTES must be greater than or equal to 256, got '12'"),
        ({"IDLE_TIMEOUT_S": "5m"}, "IDLE_TIMEOUT_S must be a valid number"),
        ({"ENABLE_UI": "maybe"}, "ENABLE_UI must be a valid boolean"),
        ({"DATA_MODE": "paper"}, "DATA_MODE must be 'live', 'demo' or 'auto', got 'paper'"),
        ({"DEVICE": "tpu"}, "DEVICE must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        ({"SYMBOLS": ","}, "SYMBOLS must be at least one symbol"),
        ({"SYMBOLS": "BTC,PEPE"}, "SYMBOLS has PEPE, which the live providers do not know"),
        ({"SOURCES_TIMEOUT_S": "0"}, "SOURCES_TIMEOUT_S must be greater than 0"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "TRUSTED_PROXIES must be IP addresses or networks"),
    ],
)
def test_settings_bad_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_settings_several_bad_values_are_named_together() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PORT": "x", "OUTBOX_SIZE": "1", "LOG_JSON": "sometimes"})
    assert all(name in str(caught.value) for name in ("PORT", "OUTBOX_SIZE", "LOG_JSON"))


@pytest.mark.parametrize(("name", "value"), [
    ("ADMIN_TOKEN", SECRET), ("API_TOKENS", SECRET), ("DATABASE_URL", f"postgresql+psycopg://hub:{SECRET}@db/hub"),
    ("REDIS_URL", f"redis://:{SECRET}@redis:6379/0"), ("CRYPTOPANIC_TOKEN", SECRET), ("CRYPTOCOMPARE_KEY", SECRET),
    ("TWITTER_BEARER_TOKEN", SECRET),
])
def test_settings_secrets_never_print(name: str, value: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({name: value})
    logging.getLogger("test").warning("settings %s", settings)
    assert SECRET not in repr(settings) and SECRET not in str(settings) and SECRET not in caplog.text
    assert SECRET not in settings.model_dump_json()


def test_settings_api_tokens_are_revealed_only_on_request() -> None:
    settings = Settings.from_env({"API_TOKENS": "a, b"})
    assert settings.api_token_values() == ("a", "b")


def test_settings_every_field_is_documented_and_in_one_section() -> None:
    fields = [name for section in SECTIONS for name in section.model_fields]
    assert sorted(fields) == sorted(Settings.model_fields) and len(fields) == len(set(fields))
    assert all(info.description for info in Settings.model_fields.values())


def test_sources_section_is_the_settings_values() -> None:
    settings = Settings.from_env({"REDDIT_SUBREDDITS": "Bitcoin", "SOURCES_DISABLED": "Kraken",
                                  "TWITTER_BEARER_TOKEN": SECRET, "MARKET_UP_WINDOW_S": "90"})
    sources = settings.section(SourcesSection)
    assert (sources.reddit_subreddits, sources.sources_disabled, sources.market_up_window_s) == (
        ("Bitcoin",), ("Kraken",), 90.0)
    assert reveal(sources.twitter_bearer_token) == SECRET and SECRET not in repr(sources)


def test_sources_defaults_respect_provider_rate_limits() -> None:
    sources = SourcesSection()
    assert (sources.market_poll_s, sources.news_poll_s, sources.fng_poll_s, sources.social_poll_s) == (
        10.0, 120.0, 600.0, 180.0)


def test_binance_defaults_are_the_market_data_mirrors() -> None:
    """api.binance.com and stream.binance.com answer HTTP 451 to US-hosted Spaces; the mirrors do not."""
    defaults = Settings.from_env({})
    assert defaults.binance_url == "https://data-api.binance.vision"
    assert defaults.binance_ws_url == "wss://data-stream.binance.vision/ws/!miniTicker@arr"


def test_env_names_are_the_field_names() -> None:
    assert env_name("max_frame_bytes") == "MAX_FRAME_BYTES"


def test_app_start_with_bad_values_exits_naming_them(tmp_path) -> None:
    app = AppProcess(port=free_port(), data_dir=tmp_path,
                     env={**FAST_ENV, "MAX_FRAME_BYTES": "12", "ENABLE_UI": "maybe"})
    with pytest.raises(RuntimeError, match="app exited with 2") as caught:
        app.start(timeout=120)
    assert "MAX_FRAME_BYTES" in str(caught.value) and "ENABLE_UI" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_reuse_port_without_redis_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REUSE_PORT": "1", "ADMIN_TOKEN": SECRET})
    assert str(caught.value) == ("invalid configuration: REUSE_PORT=1 needs REDIS_URL: processes sharing a port "
                                 "must share one bus; set REDIS_URL or REUSE_PORT=0")


def test_app_start_with_reuse_port_and_no_redis_exits_with_2(tmp_path) -> None:
    app = AppProcess(port=free_port(), data_dir=tmp_path, env={**FAST_ENV, "REUSE_PORT": "1"})
    with pytest.raises(RuntimeError, match="app exited with 2") as caught:
        app.start(timeout=120)
    assert "REUSE_PORT=1 needs REDIS_URL" in str(caught.value) and "Traceback" not in str(caught.value)


def test_trusted_proxies_default_to_loopback_off_a_space() -> None:
    assert Settings.from_env({}).trusted_proxies == ("127.0.0.1", "::1")


def test_trusted_proxies_default_on_a_space_takes_in_the_private_networks() -> None:
    trusted = Settings.from_env({"SPACE_ID": "owner/hub"}).trusted_proxies
    assert "10.0.0.0/8" in trusted and "127.0.0.1" in trusted
    assert Settings.from_env({"SPACE_ID": "owner/hub", "TRUSTED_PROXIES": "10.1.2.3"}).trusted_proxies == ("10.1.2.3",)


def test_data_dir_defaults_to_the_space_storage_when_it_is_writable(tmp_path: Path) -> None:
    assert Settings.from_env({"SPACE_STORAGE_DIR": str(tmp_path)}).data_dir == tmp_path
    assert Settings.from_env({"SPACE_STORAGE_DIR": str(tmp_path / "absent")}).data_dir == Path("data")
    assert Settings.from_env({"SPACE_STORAGE_DIR": str(tmp_path), "DATA_DIR": "/srv/hub"}).data_dir == Path("/srv/hub")


def test_history_size_beyond_what_the_journal_keeps_is_refused() -> None:
    from core.vocabulary import JOURNAL_KEEP

    assert Settings.from_env({"HISTORY_SIZE": str(JOURNAL_KEEP)}).history_size == JOURNAL_KEEP
    with pytest.raises(ConfigError, match="HISTORY_SIZE"):
        Settings.from_env({"HISTORY_SIZE": str(JOURNAL_KEEP + 1)})
