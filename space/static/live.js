// The /live page: prices and news straight from the WebSocket API through hub-client.js.
import { HubSocket, endpointUrl } from "/space/static/hub-client.js";

const params = new URLSearchParams(location.search);
const symbols = (document.querySelector('meta[name="hub-symbols"]').content || "BTC,ETH")
  .split(",").filter(Boolean);
// Backoff and heartbeat can be tuned from the URL for demos: /live?maxDelayMs=2000
const tuning = {};
for (const key of ["baseDelayMs", "maxDelayMs", "heartbeatMs", "pongTimeoutMs"]) {
  if (params.has(key)) tuning[key] = Number(params.get(key));
}

const $ = (sel) => document.querySelector(sel);
const fmtPrice = (p) => p >= 1000 ? p.toLocaleString("en-US", { style: "currency", currency: "USD" })
  : p >= 1 ? "$" + p.toFixed(4) : "$" + p.toPrecision(4);
const fmtPct = (v) => v === null || v === undefined ? "—" : (v > 0 ? "+" : "") + v.toFixed(2) + "%";
const cls = (v) => v > 0 ? "up" : v < 0 ? "down" : "flat";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function showState(id, socket) {
  const box = $(id);
  let lastClose = null;
  const meta = () => {
    const extra = [`reconnects ${socket.reconnects}`];
    if (socket.lastSeq !== null) extra.push(`seq ${socket.lastSeq}`);
    if (lastClose) extra.push(`last close ${lastClose}`);
    box.querySelector(".meta").textContent = extra.join(" · ");
  };
  socket.addEventListener("message", meta);
  socket.addEventListener("state", (event) => {
    const { state, delayMs, code } = event.detail;
    if (code) lastClose = code;
    box.dataset.state = state;
    box.querySelector(".state").textContent = state + (state === "waiting" ? ` ${Math.round(delayMs)} ms` : "");
    meta();
  });
}

// ---------------------------------------------------------------- prices
const market = new HubSocket(endpointUrl("/ws/market_data"), { symbols, ...tuning });
const cards = new Map();
const simulated = new Set(); // symbols whose latest price came from the simulator
showState("#conn-market", market);
market.addEventListener("price_update", (event) => {
  const { source, data } = event.detail;
  if (source === "simulator") simulated.add(data.symbol); else simulated.delete(data.symbol);
  $("#sim-banner").hidden = simulated.size === 0;
  let card = cards.get(data.symbol);
  if (!card) {
    if (!cards.size) $("#prices").replaceChildren();
    card = el("div", { class: "card", "data-symbol": data.symbol },
      el("div", { class: "sym" }, data.symbol), el("div", { class: "price" }, ""),
      el("div", { class: "chg" }, ""), el("div", { class: "src" }, ""));
    cards.set(data.symbol, card);
    const order = symbols.indexOf(data.symbol);
    card.style.order = String(order < 0 ? 999 : order);
    $("#prices").append(card);
    $("#price-count").textContent = `${cards.size} symbols`;
  }
  const priceNode = card.querySelector(".price");
  const previous = Number(priceNode.dataset.value || data.price);
  priceNode.textContent = fmtPrice(data.price);
  priceNode.dataset.value = data.price;
  if (data.price !== previous) {
    card.classList.remove("flash-up", "flash-down");
    void card.offsetWidth; // restart the animation
    card.classList.add(data.price > previous ? "flash-up" : "flash-down");
  }
  const chg = card.querySelector(".chg");
  chg.textContent = `24h ${fmtPct(data.change_24h)}`;
  chg.className = "chg " + cls(data.change_24h);
  card.querySelector(".src").textContent = source;
});
market.connect();

// ---------------------------------------------------------------- news
// The latest items come first (?backlog=), so the list is not empty until the next item is published.
const NEWS_BACKLOG = 20;
const news = new HubSocket(endpointUrl("/ws/news"), { backlog: NEWS_BACKLOG, ...tuning });
let newsCount = 0;
showState("#conn-news", news);
news.addEventListener("news", (event) => {
  const { data, seq } = event.detail;
  const list = $("#news");
  list.querySelector(".empty")?.remove();
  const sentiment = data.sentiment
    ? el("span", { class: `badge ${data.sentiment}` },
        `${data.sentiment}${data.sentiment_score !== null ? " " + data.sentiment_score.toFixed(2) : ""}`)
    : el("span", { class: "badge unscored" }, "unscored");
  const safe = /^https?:\/\//i.test(data.url) ? data.url : "#";
  const item = el("li", { "data-seq": String(seq) },
    el("a", { href: safe, target: "_blank", rel: "noopener noreferrer" }, data.title),
    el("div", { class: "meta" }, sentiment, el("span", { class: "source" }, data.source),
      el("span", { class: "seq" }, `seq ${seq}`)));
  list.prepend(item);
  while (list.children.length > 200) list.lastElementChild.remove();
  newsCount += 1;
  $("#news-count").textContent = `${newsCount} received`;
});
news.addEventListener("gap", (event) => {
  $("#news").prepend(el("li", { class: "gap" }, `Some news could not be replayed: ${event.detail.details}`));
});
news.connect();

$("#news-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  const keywords = $("#keywords").value.split(",").map((k) => k.trim()).filter(Boolean);
  news.setFilter(keywords);
});

// For tests and the curious: the two clients.
window.hub = { market, news };
