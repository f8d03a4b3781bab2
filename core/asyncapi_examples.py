"""Example messages of the AsyncAPI document, built from the models (so they are valid by construction).

Values follow the examples of the original design document.
"""

from __future__ import annotations

from core import protocol as p

__all__ = [
    "ACK",
    "ERROR",
    "MARKET_ERROR",
    "MODELS_STATUS",
    "NEWS",
    "PONG",
    "PRICE_UPDATE",
    "SENTIMENT_UPDATE",
    "SYSTEM_STATUS",
]

T = "2025-12-08T10:30:00Z"

PRICE_UPDATE = p.PriceUpdateMessage(
    timestamp=T,
    seq=1042,
    epoch="5f2c1a9b0e7d",
    source="binance",
    data=p.PriceData(
        symbol="BTC",
        price=43250.50,
        change_24h=2.5,
        change_7d=-1.2,
        volume_24h=25_000_000_000,
        market_cap=850_000_000_000,
        timestamp="2025-12-08T10:30:15Z",
        age_s=0.4,
    ),
)
NEWS = p.NewsMessage(
    timestamp=T,
    seq=87,
    epoch="a41d07c3b2e9",
    data=p.NewsData(
        title="Bitcoin ETF inflows reach a record",
        description="Spot funds took in $1.2B on Monday.",
        url="https://www.coindesk.com/markets/2025/12/08/example",
        source="CoinDesk",
        published_at="2025-12-08T10:29:40Z",
        sentiment="positive",
        sentiment_score=0.85,
        image_url="https://www.coindesk.com/resizer/example.jpg",
        sentiment_model="ensemble(embedded/minilm-finhead+ElKulako/cryptobert)",
        scored_by=["embedded/minilm-finhead", "ElKulako/cryptobert"],
    ),
)
SENTIMENT_UPDATE = p.SentimentUpdateMessage(
    timestamp=T,
    seq=12,
    epoch="c0ffee123456",
    data=p.SentimentData(
        fear_greed=p.FearGreedData(
            value=75,
            classification="Extreme Greed",
            timestamp="2025-12-08T00:00:00Z",
            source="alternative.me",
        ),
        social={
            "twitter": p.SocialSentiment(
                sentiment=None, score=None, mentions=None, reason="no TWITTER_BEARER_TOKEN configured"
            ),
            "reddit": p.SocialSentiment(sentiment="neutral", score=0.52, mentions=8000),
        },
        market=p.MarketMood(overall="bullish", confidence=0.72, inputs={"fear_greed": 0.5, "news": 0.31}),
    ),
)
MODELS_STATUS = p.ModelsStatusMessage(
    timestamp=T,
    seq=301,
    epoch="9a8b7c6d5e4f",
    data=p.ModelsStatusData(
        total=3,
        available=1,
        loading=0,
        failed=1,
        skipped=1,
        models=[
            p.ModelEntry(
                id="ElKulako/cryptobert",
                status="available",
                reason="available: its measured cost fits the CPU budget",
                success_rate=98.5,
                avg_response_time=150,
                last_used="2025-12-08T10:29:58Z",
                device="cpu",
                precision="onnx-int8",
                runtime=p.ModelRuntime(
                    chosen="onnx-int8",
                    source="cache",
                    candidates=[
                        p.RuntimeCandidate(name="fp32", texts_per_s=21.4, agreement=1.0, kept=True),
                        p.RuntimeCandidate(
                            name="int8", texts_per_s=55.0, agreement=0.946, kept=False, reason="agreement 0.9460 < 0.99"
                        ),
                        p.RuntimeCandidate(name="onnx-int8", texts_per_s=61.2, agreement=0.995, kept=True),
                    ],
                    texts=400,
                    measured_at="2025-12-08T09:00:00Z",
                ),
            ),
            p.ModelEntry(
                id="ProsusAI/finbert",
                status="failed",
                success_rate=None,
                avg_response_time=None,
                last_used=None,
                reason="not in the local cache and HF_HUB_OFFLINE=1",
                error="not in the local cache and HF_HUB_OFFLINE=1",
            ),
            p.ModelEntry(
                id="cardiffnlp/twitter-roberta-base-sentiment-latest",
                status="skipped",
                reason="skipped: scoring one news item would take about 0.31 s of a core here (estimated): with "
                "the models already chosen, an item would take 0.65 s on 1 core(s), over the 0.5 s news deadline "
                "(NEWS_SCORE_DEADLINE_MS); set MODELS to load it at start, or load it with the admin token",
                success_rate=None,
                avg_response_time=None,
                last_used=None,
            ),
        ],
    ),
)
SYSTEM_STATUS = p.SystemStatusMessage(
    timestamp=T,
    seq=720,
    epoch="0570a3f50987",
    ai_models=p.AiModelsSection(
        total=3,
        available=1,
        failed=1,
        loading=0,
        skipped=1,
        models=[p.ModelSummary(id="ElKulako/cryptobert", status="available",
                               reason="available: its measured cost fits the CPU budget", success_rate=98.5)],
    ),
    data_sources=p.DataSourcesSection(
        total=2,
        active=1,
        degraded=0,
        inactive=1,
        pools=1,
        categories={"market_data": {"total": 2, "active": 1, "degraded": 0, "inactive": 1}},
        sources=[
            p.SourceEntry(
                name="binance",
                category="market_data",
                status="active",
                last_success="2025-12-08T10:29:59Z",
                latency_ms=84.2,
            ),
            p.SourceEntry(
                name="kraken",
                category="market_data",
                status="inactive",
                last_error="ConnectTimeout after 5.0s",
            ),
        ],
        data_mode="live",
        simulated=False,
    ),
    database=p.DatabaseSection(
        online=True, last_check="2025-12-08T10:29:58Z", ai_models_db=True, main_db=True, storage="persistent",
        data_dir="/data", storage_reason="in the Space's persistent storage (/data)",
    ),
    stats=p.StatsSection(
        total_sources=2,
        active_sources=1,
        total_models=2,
        available_models=1,
        requests_last_minute=50,
        requests_last_hour=2500,
        connections=12,
        uptime_s=3600.0,
    ),
    agent_running=True,
    version="0.1.0",
    clients=p.ClientsSection(
        trusted_proxies=["127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
        arrivals=4210, distinct_addresses=57, forwarded_ignored=0,
    ),
)
ERROR = p.ErrorMessage(
    timestamp=T,
    error=p.ErrorDetail(
        code=p.ErrorCode.INVALID_SYMBOL, message="Unknown symbol(s): FOO", details="tracked symbols: BTC, ETH"
    ),
)
MARKET_ERROR = p.StreamErrorMessage(
    timestamp=T,
    seq=1043,
    epoch="5f2c1a9b0e7d",
    error=p.ErrorDetail(
        code=p.ErrorCode.CONNECTION_ERROR,
        message="Every market data provider is unreachable",
        details="last known prices continue with their age_s; streaming resumes when a provider returns",
    ),
)
ACK = p.AckMessage(timestamp=T, action="subscribe", data={"symbols": ["BTC", "ETH", "SOL"]}, id=1)
PONG = p.PongMessage(timestamp=T)
