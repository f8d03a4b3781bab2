"""The API tab: how to connect, copy-paste snippets, and the message reference from the AsyncAPI document.

The ws:// or wss:// base is filled in the browser from the page's own location (`API_JS`), so the
snippets show the Space's URL when deployed and localhost on a laptop.
"""

from __future__ import annotations

from typing import Any

from core.asyncapi import CHANNELS, build_asyncapi
from core.endpoints import MARKET_PATH, NEWS_PATH, STATUS_PATH
from core.protocol import CloseCode, ErrorCode
from space.fmt import esc
from space.routes import STATIC_PREFIX

__all__ = ["API_JS", "api_html"]

WS = '<span class="ws-base">ws://localhost:7860</span>'
HTTP = '<span class="http-base">http://localhost:7860</span>'

# Runs once when the tab's HTML mounts: derive the bases from the page's location, wire the copy buttons.
API_JS = """
const wsBase = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
element.querySelectorAll('.ws-base').forEach((n) => { n.textContent = wsBase; });
element.querySelectorAll('.http-base').forEach((n) => { n.textContent = location.origin; });
element.querySelectorAll('button.copy').forEach((button) => {
  button.addEventListener('click', async () => {
    const text = button.parentElement.querySelector('pre').innerText;
    try { await navigator.clipboard.writeText(text); }
    catch (_) {
      const area = document.createElement('textarea'); area.value = text; document.body.append(area);
      area.select(); document.execCommand('copy'); area.remove();
    }
    button.textContent = 'Copied'; setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
});
"""

_JS_CLIENT = """import { HubSocket } from "__HTTP____STATIC__/hub-client.js";

// Prices: auto-reconnect with backoff + jitter, re-subscribes and resumes from the last seq by itself.
const market = new HubSocket("__WS____MARKET__", { symbols: ["BTC", "ETH", "SOL"] });
market.addEventListener("price_update", (e) => {
  const { symbol, price, change_24h } = e.detail.data;
  console.log(symbol, price, change_24h, "from", e.detail.source);
});
market.addEventListener("state", (e) => console.log("market socket:", e.detail.state));
market.connect();

// News with a keyword filter; no item is lost across a reconnect.
const news = new HubSocket("__WS____NEWS__", { keywords: ["bitcoin", "ethereum"] });
news.addEventListener("news", (e) => console.log(e.detail.data.title, e.detail.data.sentiment));
news.connect();"""

_JS_PLAIN = """const ws = new WebSocket("__WS____STATUS__");
ws.onmessage = (event) => {
  const message = JSON.parse(event.data);
  if (message.type === "system_status") console.log("sources:", message.stats.total_sources);
};
setInterval(() => ws.send(JSON.stringify({ type: "ping" })), 30000);  // heartbeat"""

_PYTHON = """import asyncio
import json

import websockets  # pip install websockets


async def main() -> None:
    async for ws in websockets.connect("__WS____MARKET__"):  # reconnects with backoff
        try:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC", "ETH"]}))
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "price_update":
                    data = message["data"]
                    print(data["symbol"], data["price"], message["source"])
        except websockets.ConnectionClosed:
            continue


asyncio.run(main())"""

_PYTHON_CLIENT = """import asyncio

from crypto_hub_client import HubClient  # pip install ./clients/python: reconnects, re-filters, resumes from seq


async def main() -> None:
    async with HubClient.for_stream("news", "__WS__", keywords=["bitcoin"]) as client:
        async for message in client:
            print(message["type"], message.get("seq"), message.get("data", {}).get("title"))


asyncio.run(main())

# or from a shell, one JSON object a line:
#   crypto-hub-client market --symbols BTC,ETH --url __WS__"""

_CURL = """curl -i -N -H "Connection: Upgrade" -H "Upgrade: websocket" \\
  -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: SGVsbG8sIHdvcmxkIQ==" \\
  __HTTP____NEWS__"""


def _snippet(title: str, code: str, element_id: str) -> str:
    for placeholder, path in (("__MARKET__", MARKET_PATH), ("__NEWS__", NEWS_PATH), ("__STATUS__", STATUS_PATH)):
        code = code.replace(placeholder, path)
    code = esc(code).replace("__STATIC__", STATIC_PREFIX).replace("__WS__", WS).replace("__HTTP__", HTTP)
    return (
        f'<div class="snippet" id="{element_id}"><h4>{esc(title)}</h4>'
        f'<button class="copy" type="button">Copy</button><pre><code>{code}</code></pre></div>'
    )


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _type_of(document: dict[str, Any], schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return f'"{schema["const"]}"'
    if "anyOf" in schema:
        return " | ".join(_type_of(document, s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"{_type_of(document, schema.get('items', {}))}[]"
    if "enum" in schema:
        return " | ".join(f'"{v}"' for v in schema["enum"])
    return str(schema.get("type", "any"))


def _fields(document: dict[str, Any], payload: dict[str, Any]) -> str:
    schema = _resolve(document, payload)
    parts = []
    for name, prop in schema.get("properties", {}).items():
        if name == "data" and "$ref" in prop:
            inner = _resolve(document, prop)
            inner_fields = ", ".join(
                f"{k}: {_type_of(document, v)}" for k, v in inner.get("properties", {}).items()
            )
            parts.append(f"data: {{{inner_fields}}}")
        else:
            parts.append(f"{name}: {_type_of(document, prop)}")
    return ", ".join(parts)


def _reference(document: dict[str, Any]) -> str:
    rows = []
    for name, message in document["components"]["messages"].items():
        channels = [c.address for c in CHANNELS if name in c.sends + c.receives]
        direction = "server → client" if message["x-direction"] == "server-to-client" else "client → server"
        rows.append(
            f'<tr data-message="{esc(name)}"><td><code>{esc(name)}</code>'
            f'<div class="sub">{esc(direction)}</div></td><td>{esc(message["summary"])}'
            f'<div class="fields">{esc(_fields(document, message["payload"]))}</div></td>'
            f"<td>{'<br>'.join(f'<code>{esc(c)}</code>' for c in channels)}</td></tr>"
        )
    return (
        '<table class="hub-table compact" id="message-reference"><thead><tr><th>Message</th><th>Content</th>'
        f"<th>Endpoints</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def api_html() -> str:
    """Return the API tab's content (static: the browser fills in its own host)."""
    document = build_asyncapi()
    endpoints = "".join(
        f"<tr><td><code>{WS}{esc(c.address)}</code></td><td>{esc(c.description)}</td>"
        f"<td>{', '.join(f'<code>{esc(r)}</code>' for r in c.receives)}</td></tr>"
        for c in CHANNELS
    )
    errors = ", ".join(f"<code>{esc(code.value)}</code>" for code in ErrorCode)
    closes = ", ".join(
        f"<code>{c.value}</code> {esc(c.name.split('_', 2)[-1].replace('_', ' ').lower())}" for c in CloseCode
    )
    return f"""<div class="hub-api" id="api-doc">
<h3>Connect</h3>
<p>Every stream is a plain WebSocket on this server. Base URL:</p>
<div class="endpoint-base" id="ws-base-url">{WS}</div>
<div class="links">
  <a href="/asyncapi.json" target="_blank" id="asyncapi-link">AsyncAPI 3.0 document</a>
  <a href="/docs" target="_blank" id="docs-link">REST API (FastAPI /docs)</a>
  <a href="/live" target="_blank" id="live-link">/live: a page streaming straight from the API</a>
  <a href="{STATIC_PREFIX}/hub-client.js" target="_blank">hub-client.js</a>
</div>
<table class="hub-table compact" id="endpoints"><thead><tr><th>Endpoint</th><th>What it streams</th>
<th>You can send</th></tr></thead><tbody>{endpoints}</tbody></table>
<p>Resume after a disconnect with <code>?since=&lt;seq&gt;&amp;epoch=&lt;epoch&gt;</code>
(every streamed message carries both). When the server sets <code>API_TOKENS</code>, add
<code>?token=…</code>, an <code>Authorization: Bearer</code> header or a
<code>Sec-WebSocket-Protocol</code> value.</p>
<h3>JavaScript (browser)</h3>
{_snippet("With the shipped client", _JS_CLIENT, "snippet-js")}
{_snippet("With a bare WebSocket", _JS_PLAIN, "snippet-js-plain")}
<h3>Python</h3>
{_snippet("With websockets", _PYTHON, "snippet-python")}
{_snippet("With the hub's own client (clients/python)", _PYTHON_CLIENT, "snippet-python-client")}
<h3>Check the handshake</h3>
{_snippet("curl", _CURL, "snippet-curl")}
<h3>Messages</h3>
<p>Generated from the message models (<code>core/protocol.py</code>); the full JSON Schemas are in the
<a href="/asyncapi.json" target="_blank">AsyncAPI document</a>. Server messages use
<code>{{"type", "timestamp", "data"}}</code>; <code>system_status</code> keeps its sections
at the top level.</p>
{_reference(document)}
<h3>Errors and close codes</h3>
<p><code>{{"type": "error", "error": {{"code", "message", "details"}}}}</code> with code one of {errors}.</p>
<p>Close codes: {closes}.</p>
</div>"""
