"""The tracked assets and each provider's own name for them.

Every provider spells an asset differently (CoinGecko `bitcoin`, Binance `BTCUSDT`, Kraken
`XXBTZUSD`, Coinbase `BTC-USD`, CoinPaprika `btc-bitcoin`, CoinLore `90`). This table is the one
place that knows; `None` means the provider has no USD (or USDT) market for the asset, so it is
simply not asked for it.

Binance quotes in USDT, which we treat as USD (the peg has held within ~0.1 % outside of crises;
fusion prefers USD venues only by freshness, not by this difference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ASSETS",
    "STABLECOINS",
    "SYMBOLS",
    "Asset",
    "asset_for",
    "is_known_symbol",
    "provider_ids",
]


@dataclass(frozen=True)
class Asset:
    """One tracked asset and its id at each provider (None: not listed there)."""

    symbol: str
    name: str
    coingecko: str
    coinpaprika: str
    binance: str | None = None
    kraken: str | None = None  # the result key Kraken answers with; it also accepts it as `pair`
    coinbase: str | None = None
    coinlore: str | None = None  # None: matched by symbol in CoinLore's rank-ordered list
    keywords: tuple[str, ...] = ()  # extra words that count as a mention in social posts


# Top 20 by market cap (late 2025), stablecoins included because users ask for them and
# wrapped/staked derivatives excluded (they mirror ETH/BTC).
ASSETS: tuple[Asset, ...] = (
    Asset("BTC", "Bitcoin", "bitcoin", "btc-bitcoin", "BTCUSDT", "XXBTZUSD", "BTC-USD", "90", ("bitcoin",)),
    Asset(
        "ETH",
        "Ethereum",
        "ethereum",
        "eth-ethereum",
        "ETHUSDT",
        "XETHZUSD",
        "ETH-USD",
        "80",
        ("ethereum", "ether"),
    ),
    Asset("USDT", "Tether", "tether", "usdt-tether", None, "USDTZUSD", "USDT-USD", "518", ("tether",)),
    Asset("XRP", "XRP", "ripple", "xrp-xrp", "XRPUSDT", "XXRPZUSD", "XRP-USD", "58", ("ripple",)),
    Asset("BNB", "BNB", "binancecoin", "bnb-binance-coin", "BNBUSDT", None, None, "2710"),
    Asset("SOL", "Solana", "solana", "sol-solana", "SOLUSDT", "SOLUSD", "SOL-USD", "48543", ("solana",)),
    Asset("USDC", "USD Coin", "usd-coin", "usdc-usd-coin", "USDCUSDT", "USDCUSD", None, None),
    Asset(
        "DOGE", "Dogecoin", "dogecoin", "doge-dogecoin", "DOGEUSDT", "XDGUSD", "DOGE-USD", "2", ("dogecoin",)
    ),
    Asset("TRX", "TRON", "tron", "trx-tron", "TRXUSDT", "TRXUSD", None, None, ("tron",)),
    Asset("ADA", "Cardano", "cardano", "ada-cardano", "ADAUSDT", "ADAUSD", "ADA-USD", "257", ("cardano",)),
    Asset(
        "LINK",
        "Chainlink",
        "chainlink",
        "link-chainlink",
        "LINKUSDT",
        "LINKUSD",
        "LINK-USD",
        None,
        ("chainlink",),
    ),
    Asset(
        "AVAX",
        "Avalanche",
        "avalanche-2",
        "avax-avalanche",
        "AVAXUSDT",
        "AVAXUSD",
        "AVAX-USD",
        None,
        ("avalanche",),
    ),
    Asset("XLM", "Stellar", "stellar", "xlm-stellar", "XLMUSDT", "XXLMZUSD", "XLM-USD", None, ("stellar",)),
    Asset("SUI", "Sui", "sui", "sui-sui", "SUIUSDT", "SUIUSD", "SUI-USD", None),
    Asset(
        "BCH",
        "Bitcoin Cash",
        "bitcoin-cash",
        "bch-bitcoin-cash",
        "BCHUSDT",
        "BCHUSD",
        "BCH-USD",
        None,
        ("bitcoin cash",),
    ),
    Asset(
        "HBAR",
        "Hedera",
        "hedera-hashgraph",
        "hbar-hedera-hashgraph",
        "HBARUSDT",
        "HBARUSD",
        "HBAR-USD",
        None,
        ("hedera",),
    ),
    Asset("TON", "Toncoin", "the-open-network", "ton-toncoin", "TONUSDT", None, None, None, ("toncoin",)),
    Asset(
        "LTC", "Litecoin", "litecoin", "ltc-litecoin", "LTCUSDT", "XLTCZUSD", "LTC-USD", "1", ("litecoin",)
    ),
    Asset(
        "SHIB",
        "Shiba Inu",
        "shiba-inu",
        "shib-shiba-inu",
        "SHIBUSDT",
        "SHIBUSD",
        "SHIB-USD",
        "45088",
        ("shiba inu",),
    ),
    Asset("DOT", "Polkadot", "polkadot", "dot-polkadot", "DOTUSDT", "DOTUSD", "DOT-USD", None, ("polkadot",)),
)

SYMBOLS: tuple[str, ...] = tuple(asset.symbol for asset in ASSETS)

# Pegged to the dollar: their "momentum" is noise, so market mood leaves them out.
STABLECOINS: frozenset[str] = frozenset({"USDT", "USDC"})

_BY_SYMBOL: dict[str, Asset] = {asset.symbol: asset for asset in ASSETS}

_PROVIDER_FIELDS = ("coingecko", "coinpaprika", "binance", "kraken", "coinbase", "coinlore")


def is_known_symbol(symbol: str) -> bool:
    """Return True when `symbol` (any case) is one of the tracked assets."""
    return symbol.strip().upper() in _BY_SYMBOL


def asset_for(symbol: str) -> Asset:
    """Return the asset for `symbol`; raise KeyError with the known symbols as a hint."""
    try:
        return _BY_SYMBOL[symbol.strip().upper()]
    except KeyError:
        raise KeyError(f"unknown symbol {symbol!r}; expected one of {', '.join(SYMBOLS)}") from None


def provider_ids(provider: str, symbols: Iterable[str]) -> Mapping[str, str]:
    """Map the provider's id to our symbol for every symbol the provider lists.

    Args:
        provider: one of coingecko, coinpaprika, binance, kraken, coinbase, coinlore.
        symbols: our symbols (unknown ones raise KeyError).
    """
    if provider not in _PROVIDER_FIELDS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(_PROVIDER_FIELDS)}")
    mapping: dict[str, str] = {}
    for symbol in symbols:
        asset = asset_for(symbol)
        provider_id = getattr(asset, provider)
        if provider_id is not None:
            mapping[provider_id] = asset.symbol
    return mapping
