"""`crypto-hub-client STREAM` (or `python -m crypto_hub_client STREAM`): print one stream of the hub as JSON lines.

    crypto-hub-client market --symbols BTC,ETH
    crypto-hub-client news --keywords bitcoin --url wss://<space>.hf.space
    crypto-hub-client status | jq .stats

Messages go to stdout, one JSON object a line; connection states (with -v) and errors go to stderr.
Exit status: 0 done, 2 refused by the server (bad token or URL), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from crypto_hub_client import DEFAULT_BASE_URL, STREAM_PATHS, ConnectionRejected, HubClient

__all__ = ["main"]


def _csv(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crypto-hub-client",
        description="Print one stream of the hub as JSON lines, reconnecting and resuming on its own.",
    )
    parser.add_argument("stream", choices=list(STREAM_PATHS), help="which endpoint to read")
    parser.add_argument("--url", default=os.environ.get("HUB_URL", DEFAULT_BASE_URL),
                        help="base URL of the hub (default: $HUB_URL or %(default)s)")
    parser.add_argument("--symbols", help="market: comma-separated symbols, e.g. BTC,ETH")
    parser.add_argument("--keywords", help="news: comma-separated keywords, e.g. bitcoin,etf")
    parser.add_argument("--sources", help="news: comma-separated source names")
    parser.add_argument("--token", default=os.environ.get("HUB_TOKEN"), help="API token ($HUB_TOKEN)")
    parser.add_argument("--since", type=int, help="resume after this seq (with --epoch)")
    parser.add_argument("--epoch", help="epoch that --since belongs to")
    parser.add_argument("--count", type=int, help="exit after printing this many messages")
    parser.add_argument("--ping-interval", type=float, default=20.0, help="protocol ping every N s (0: none)")
    parser.add_argument("--heartbeat-timeout", type=float, default=45.0,
                        help="reconnect when nothing arrives for N s (0 disables)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection states to stderr")
    return parser


async def _print_stream(args: argparse.Namespace) -> int:
    client = HubClient.for_stream(
        args.stream, args.url,
        symbols=_csv(args.symbols), keywords=_csv(args.keywords), sources=_csv(args.sources) or None,
        token=args.token, since=args.since, epoch=args.epoch,
        ping_interval=args.ping_interval or None, heartbeat_timeout=args.heartbeat_timeout or None,
    )
    printed = 0
    try:
        async with client:
            async for message in client:
                sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
                sys.stdout.flush()
                printed += 1
                if args.count is not None and printed >= args.count:
                    break
    except ConnectionRejected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head` closed our stdout
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print a stream as JSON lines until interrupted or --count is reached; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.stream == "market" and not _csv(args.symbols):
        parser.error("market needs --symbols, e.g. --symbols BTC,ETH")
    if args.symbols and args.stream != "market":
        parser.error("--symbols belongs to the market stream")
    if (args.keywords or args.sources) and args.stream != "news":
        parser.error("--keywords and --sources belong to the news stream")
    if args.heartbeat_timeout and args.ping_interval and args.heartbeat_timeout <= args.ping_interval:
        parser.error("--heartbeat-timeout must exceed --ping-interval")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_print_stream(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
