// Shorty's web app: what a page does with JavaScript on. Every page works without it.
"use strict";

// Copy buttons: data-copy holds the text; the status beside the button says it worked.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const status = button.parentElement.querySelector(".copied");
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    if (status) status.textContent = "Copied";
  } catch (error) {
    if (status) status.textContent = "Copy failed: select the address and copy it";
  }
  if (status) setTimeout(() => { status.textContent = ""; }, 4000);
});

// The live view: the figures pushed over a WebSocket every second, drawn as the
// server draws them (text only: nothing from the wire becomes markup).
(() => {
  const state = document.getElementById("live-state");
  const board = document.getElementById("live");
  if (!state || !board) return;
  const url = new URL(state.dataset.socket, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";

  const shown = (value, unit = "", scale = 1, digits = 1) =>
    value === null || value === undefined ? "—" : (value * scale).toFixed(digits) + unit;

  const element = (tag, className, text) => {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  };

  const card = (s) => {
    const kind = !s.up ? "down" : s.ready === false ? "unready" : "ok";
    const article = element("article", `service ${kind}`);
    article.dataset.service = s.name;
    article.append(element("h2", "", s.name));
    const unready = s.health_error ? `up, not ready (readiness: ${s.health_error})` : "up, not ready";
    const status = !s.up ? `down: ${s.error}` : s.ready === false ? unready : s.ready ? "up, ready" : "up";
    article.append(element("p", "status", status));
    const figures = element("dl", "figures");
    const rows = [];
    if (s.kind !== "worker") {
      rows.push(["Requests/s", shown(s.requests_per_second)], ["Errors", shown(s.error_ratio, " %", 100)],
        ["p99", shown(s.p99_ms, " ms")]);
    }
    if (s.kind === "redirect") rows.push(["Cache hits", shown(s.cache_hit_ratio, " %", 100)]);
    if (s.kind !== "api") rows.push(["Clicks/s", shown(s.clicks_per_second)]);
    if (s.kind === "worker") {
      rows.push(["Stream lag", shown(s.stream_lag, "", 1, 0)], ["Dead letters", shown(s.dlq, "", 1, 0)]);
    }
    rows.push(["Loop lag", shown(s.loop_lag_ms, " ms")]);
    for (const [label, text] of rows) {
      figures.append(element("dt", "", label), element("dd", "", text));
    }
    article.append(figures);
    const deps = element("ul", "deps");
    for (const name of Object.keys(s.dependencies).sort()) {
      const dep = s.dependencies[name];
      const bad = dep.health === "down" || dep.breaker === "open";
      const cls = bad ? "bad" : dep.breaker === "half-open" ? "warn" : "good";
      const parts = [dep.health, dep.breaker && `breaker ${dep.breaker}`].filter(Boolean);
      deps.append(element("li", cls, `${name}: ${parts.join(", ")}`));
    }
    article.append(deps);
    if (s.chaos.length) article.append(element("p", "chaos", `Fault injected: ${s.chaos.join(", ")}`));
    return article;
  };

  let delay = 1000;
  const connect = () => {
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      delay = 1000;
      state.textContent = "Live: connected.";
    });
    socket.addEventListener("message", (event) => {
      const snapshot = JSON.parse(event.data);
      if (snapshot.error) return;
      board.replaceChildren(...snapshot.services.map(card));
      board.dataset.at = String(snapshot.at);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 1008) {
        state.textContent = "Live updates stopped: your session ended or may not watch. Reload the page.";
        return;
      }
      state.textContent = `Connection lost; trying again in ${delay / 1000} s.`;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  };
  connect();
})();
