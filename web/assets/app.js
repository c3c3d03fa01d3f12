// dstwatch dashboard: fetches the range's view (numbers and server-drawn
// SVG) and follows stored windows over server-sent events.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  let range = {};
  if (params.get("from") && params.get("to")) {
    range = { from: params.get("from"), to: params.get("to") };
  } else {
    range = { span: params.get("span") || "1h" };
    $("span").value = range.span;
  }

  function text(el, s) { el.textContent = s; }
  function fmtInt(n) { return Number(n).toLocaleString("en-US"); }

  function table(el, rows, cols) {
    el.replaceChildren();
    const head = el.insertRow();
    for (const c of cols) { const th = document.createElement("th"); th.textContent = c[0]; if (c[2]) th.className = "l"; head.appendChild(th); }
    for (const r of rows) {
      const tr = el.insertRow();
      for (const c of cols) {
        const td = tr.insertCell();
        const v = c[1](r);
        if (Array.isArray(v)) { td.textContent = v[0]; td.dataset.exact = v[1]; } else { td.textContent = v; }
        if (c[2]) td.className = "l";
      }
    }
    if (rows.length === 0) { const td = el.insertRow().insertCell(); td.colSpan = cols.length; td.textContent = "none"; td.className = "l muted"; }
  }
  const sent = ["Sent", (r) => [r.human[0], r.tx_bytes]];
  const recv = ["Received", (r) => [r.human[1], r.rx_bytes]];

  async function loadView() {
    const q = new URLSearchParams(range);
    const res = await fetch("api/view?" + q.toString(), { cache: "no-store" });
    if (!res.ok) { text($("title"), "error: " + (await res.text())); return; }
    const v = await res.json();
    text($("title"), v.title + " · " + v.units + " windows or rollups");
    const tx = $("tx-bytes"), rx = $("rx-bytes");
    text(tx, v.human[0]); tx.dataset.exact = v.total.tx_bytes;
    text(rx, v.human[1]); rx.dataset.exact = v.total.rx_bytes;
    text($("tx-packets"), fmtInt(v.total.tx_packets) + " packets · " + fmtInt(v.total.tx_bytes) + " B");
    text($("rx-packets"), fmtInt(v.total.rx_packets) + " packets · " + fmtInt(v.total.rx_bytes) + " B");
    $("series").innerHTML = v.series_svg;
    $("bars").innerHTML = v.bars_svg;
    $("map").innerHTML = v.map_svg;
    table($("remotes"), v.remotes, [["Remote", (r) => r.name, true], ["Country", (r) => r.country || "", true], sent, recv]);
    table($("countries"), v.countries, [["Country", (r) => r.name, true], sent, recv]);
    table($("services"), v.services, [["Service", (r) => r.name, true], sent, recv]);
    table($("asns"), v.asns, [["AS", (r) => r.name, true], ["Organisation", (r) => r.org || "", true], sent, recv]);
    const notes = $("notes");
    notes.replaceChildren();
    for (const n of v.notes) { const li = document.createElement("li"); li.textContent = n; notes.appendChild(li); }
    document.body.dataset.loaded = v.from + "/" + v.to;
  }

  function showWindow(w) {
    if (!w) return;
    text($("cur-window"), w.shown + " +" + w.seconds + "s");
    text($("cur-remotes"), w.remotes + " remotes");
    const tx = $("cur-tx"), rx = $("cur-rx");
    text(tx, w.human[0]); tx.dataset.exact = w.tx_bytes;
    text(rx, w.human[1]); rx.dataset.exact = w.rx_bytes;
    text($("cur-tx-rate"), w.rate[0]);
    text($("cur-rx-rate"), w.rate[1]);
    $("cur-window").dataset.start = w.start;
  }

  async function loadStatus() {
    const res = await fetch("api/status", { cache: "no-store" });
    if (!res.ok) return;
    const s = await res.json();
    const drops = (s.kernel && s.kernel.drops) || 0;
    text($("status"), "version " + (s.version || "?") + " · " + ((s.db && s.db.windows) || 0) + " windows stored");
    text($("drops"), "kernel drops since start: " + fmtInt(drops));
    $("drops").dataset.drops = drops;
  }

  let pending = null;
  function refreshSoon() {
    if (!range.span || pending) return; // a fixed range does not move
    pending = setTimeout(() => { pending = null; loadView(); loadStatus(); }, 300);
  }

  function follow() {
    const es = new EventSource("api/events");
    es.onopen = () => $("live").classList.add("on");
    es.onerror = () => $("live").classList.remove("on");
    es.addEventListener("window", (e) => { showWindow(JSON.parse(e.data)); refreshSoon(); });
  }

  function local(iso) { // RFC 3339 to a datetime-local value
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  $("range").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = $("from").value, t = $("to").value;
    const q = new URLSearchParams();
    if (f && t) { q.set("from", new Date(f).toISOString().replace(/\.\d+Z$/, "Z")); q.set("to", new Date(t).toISOString().replace(/\.\d+Z$/, "Z")); }
    else { q.set("span", $("span").value); }
    location.search = q.toString();
  });
  if (range.from) { $("from").value = local(range.from); $("to").value = local(range.to); }

  fetch("api/current", { cache: "no-store" }).then((r) => r.json()).then(showWindow).catch(() => {});
  loadView();
  loadStatus();
  follow();
})();
