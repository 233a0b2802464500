// The pool's dashboard: every figure comes from the HTTP API (/v1/*) and its event stream.
// No build step: plain browser JavaScript, with uPlot (vendor/uplot) for the hashrate chart.
"use strict";

(() => {
  const TOKEN_KEY = "stratumkit.api_token";
  const STATS_EVERY_MS = 2000;      // /v1/stats, /v1/rigs, /v1/leases
  const SLOW_EVERY_MS = 10000;      // /v1/blocks, /v1/policy
  const CHART_WINDOW_S = 3600;      // the chart shows the last hour
  const EVENTS_KEPT = 50;
  const CHART_WORKERS = 8;          // the chart draws the pool and its busiest workers

  const $ = (selector) => document.querySelector(selector);
  const session = { routes: [], tokenNeeded: false };
  const samples = new Map();        // unix second -> {pool: H/s, <worker>: H/s}
  let chart = null;
  let chartSeries = [];             // series names of the chart as built
  let historyLoaded = false;
  let refreshSoon = null;
  let generation = 0;               // a new token starts new loops; the old ones stop

  // ------------------------------------------------------------------ formatting

  function si(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "-";
    const prefixes = ["", "k", "M", "G", "T", "P", "E", "Z"];
    let i = 0;
    let v = Number(value);
    while (Math.abs(v) >= 1000 && i < prefixes.length - 1) { v /= 1000; i += 1; }
    return `${v.toFixed(v >= 100 || i === 0 ? 0 : 2)} ${prefixes[i]}${unit}`;
  }
  const hashrate = (v) => si(v, "H/s");
  const count = (v) => (v === null || v === undefined ? "-" : Number(v).toLocaleString("en-US"));
  function number(v, digits = 4) {
    if (v === null || v === undefined) return "-";
    return Number(v).toLocaleString("en-US", { maximumSignificantDigits: digits });
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
    let s = Math.max(0, Math.round(seconds));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  }
  // A time as the API gives it (unix seconds, or an ISO 8601 text) in unix seconds; null if neither.
  function seconds(value) {
    if (typeof value === "number") return isFinite(value) ? value : null;
    if (typeof value === "string") {
      const parsed = Date.parse(value);
      return isNaN(parsed) ? null : parsed / 1000;
    }
    return null;
  }
  function ago(time) {
    const unixSeconds = seconds(time);
    if (!unixSeconds) return "never";
    return `${duration(Date.now() / 1000 - unixSeconds)} ago`;
  }
  function clock(time) {
    const unixSeconds = seconds(time);
    if (!unixSeconds) return "-";
    return new Date(unixSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function reasons(byReason) {
    const parts = Object.entries(byReason || {}).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`);
    return parts.length ? parts.join(", ") : "none";
  }
  function short(hash) {
    return hash && hash.length > 20 ? `${hash.slice(0, 10)}…${hash.slice(-8)}` : hash || "-";
  }
  const slug = (text) => String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-");

  // ------------------------------------------------------------------ DOM

  function cell(row, cls, text, title) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    if (title) td.title = title;
    row.appendChild(td);
    return td;
  }
  function badge(td, kind, value) {
    td.textContent = "";
    const span = document.createElement("span");
    span.className = `${kind} ${kind}-${slug(value)}`;
    span.textContent = value;
    td.appendChild(span);
  }
  // Rows keyed by `key`, in the order of `items`; a row whose item changed is flashed (`changed`),
  // every row is drawn again (its "ago" texts move on), rows of items gone are removed.
  function fillTable(tbody, items, key, attribute, render, ignored = []) {
    const old = new Map([...tbody.rows].map((r) => [r.dataset[attribute], r]));
    const rows = items.map((item) => {
      const id = String(item[key]);
      const row = document.createElement("tr");
      row.dataset[attribute] = id;
      const signature = JSON.stringify(item, (k, v) => (ignored.includes(k) ? undefined : v));
      row.dataset.signature = signature;
      render(row, item);
      const before = old.get(id);
      if (before !== undefined && before.dataset.signature !== signature) row.classList.add("changed");
      return row;
    });
    tbody.replaceChildren(...rows);
  }
  function setText(selector, text) {
    const el = $(selector);
    if (el.textContent !== text) el.textContent = text;
  }
  function setStatus(state, text) {
    const el = $("#status");
    el.dataset.state = state;
    el.textContent = text;
  }

  // ------------------------------------------------------------------ the API

  class Unauthorized extends Error {}
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function headers() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: `Bearer ${token}` } : {};
  }
  async function api(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    if (response.status === 401) throw new Unauthorized(await errorText(response));
    if (!response.ok) throw new ApiError(response.status, `${path}: HTTP ${response.status} ${await errorText(response)}`);
    return response.json();
  }
  async function errorText(response) {
    try { return (await response.json()).error || ""; } catch { return ""; }
  }
  const has = (panel) => session.routes.includes(panel);

  function askForToken(reason) {
    generation += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    $("#panels").hidden = true;
    $("#token-reason").textContent = reason;
    $("#token-form").hidden = false;
    setStatus("error", "needs the API token");
  }

  // ------------------------------------------------------------------ panels

  function showStats(stats) {
    const pool = stats.pool;
    const workers = Object.entries(pool.workers || {}).map(([name, w]) => ({ name, ...w }));
    setText("#pool-hashrate", hashrate(pool.hashrate));
    setText("#pool-workers", count(workers.filter((w) => w.hashrate > 0).length));
    setText("#pool-connections", count(pool.connections));
    setText("#pool-accepted", count(pool.accepted));
    setText("#pool-rejected", count(Object.values(pool.rejected || {}).reduce((a, b) => a + b, 0)));
    setText("#pool-blocks", count(pool.blocks));
    setText("#pool-height", count(pool.height));
    const difficulty = pool.network_difficulty;
    setText("#pool-network-difficulty", difficulty >= 1e6 ? si(difficulty, "") : number(difficulty));
    setText("#pool-source", pool.source || "-");
    setText("#pool-uptime", duration(pool.uptime));
    setText("#pool-rejects", `Rejected by reason: ${reasons(pool.rejected)}`);

    workers.sort((a, b) => a.name.localeCompare(b.name));
    fillTable($("#workers tbody"), workers, "name", "worker", (row, w) => {
      cell(row, "name", w.name);
      cell(row, "hashrate", hashrate(w.hashrate));
      cell(row, "accepted", count(w.accepted));
      cell(row, "rejects", reasons(w.rejected));
      cell(row, "blocks", count(w.blocks));
      cell(row, "last-share", ago(w.last_share), clock(w.last_share));
    }, ["hashrate"]);
    if (!has("blocks")) showBlocks(pool.blocks_found || [], null);

    const point = { pool: pool.hashrate };
    const busiest = workers.filter((w) => w.hashrate > 0).sort((a, b) => b.hashrate - a.hashrate);
    for (const w of busiest.slice(0, CHART_WORKERS)) point[w.name] = w.hashrate;
    addSample(Math.floor(Date.now() / 1000), point);
  }

  // `ledger`: the /v1/blocks answer (rewards, effort, summaries); null: /v1/stats' blocks_found.
  function showBlocks(blocks, ledger) {
    for (const th of document.querySelectorAll("#blocks .ledger-only")) th.hidden = ledger === null;
    fillTable($("#blocks tbody"), blocks, "hash", "hash", (row, b) => {
      cell(row, "height", count(b.height));
      cell(row, "hash", short(b.hash), b.hash);
      cell(row, "worker", b.worker || "-");
      const when = b.time !== undefined ? b.time : b.found_at;
      cell(row, "found", ago(when), clock(when));
      badge(cell(row, "status", ""), "status", b.status || "-");
      if (ledger !== null) {
        cell(row, "reward", b.reward_sats === null || b.reward_sats === undefined ? "-" : `${(b.reward_sats / 1e8).toFixed(8)} BTC`);
        cell(row, "effort", b.effort === null || b.effort === undefined ? "-" : `${(b.effort * 100).toFixed(1)} %`);
      }
    });
    const summary = $("#blocks-summary");
    summary.hidden = ledger === null || !ledger.summary;
    if (!summary.hidden) {
      summary.textContent = "";
      for (const [span, s] of Object.entries(ledger.summary)) {
        const div = document.createElement("div");
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = `${span}: blocks, average effort`;
        const effort = s.average_effort === null || s.average_effort === undefined ? "-" : `${(s.average_effort * 100).toFixed(1)} %`;
        dd.textContent = `${count(s.blocks)}, ${effort}`;
        div.append(dt, dd);
        summary.appendChild(div);
      }
    }
  }

  // A leased rig shows its phase in the lease (serving, draining, returning) as its mode.
  function rigMode(rig, leases) {
    if (rig.mode !== "leased" || !rig.lease_id) return rig.mode;
    const lease = leases.find((l) => l.lease_id === rig.lease_id);
    const seat = lease && (lease.rigs || []).find((r) => r.rig_id === rig.rig_id);
    return seat ? seat.phase : rig.mode;
  }

  function showRigsAndLeases(rigs, leases) {
    fillTable($("#rigs tbody"), rigs, "rig_id", "rig", (row, r) => {
      cell(row, "name", r.rig_id);
      cell(row, "worker", r.worker);
      badge(cell(row, "mode", ""), "mode", rigMode(r, leases));
      cell(row, "connected", r.connected ? "yes" : "no");
      const gpus = (r.capabilities && r.capabilities.gpus) || [];
      cell(row, "gpus", gpus.map((g) => `${g.model} (${Math.round(g.vram_mb / 1024)} GB)`).join(", ") || "-");
      cell(row, "accepted", count(r.accepted_shares));
      cell(row, "jobs", count(r.jobs_in_flight));
      cell(row, "lease", r.lease_id || "-");
    });
    const ordered = [...leases].reverse();  // newest first
    fillTable($("#leases tbody"), ordered, "lease_id", "lease", (row, l) => {
      cell(row, "name", l.lease_id);
      badge(cell(row, "state", ""), "state", l.state);
      cell(row, "queue", l.queue);
      cell(row, "owner", l.owner || "-");
      cell(row, "rigs", (l.rigs || []).map((r) => `${r.rig_id} (${r.phase})`).join(", ") || "-");
      const progress = cell(row, "progress", "");
      if (l.duration_s > 0 && l.remaining_s !== undefined) {
        const bar = document.createElement("progress");
        bar.max = 1;
        bar.value = Math.min(1, Math.max(0, 1 - l.remaining_s / l.duration_s));
        progress.append(bar, ` ${duration(l.remaining_s)} left`);
      } else {
        progress.textContent = `${duration(l.remaining_s)} left`;
      }
      const usage = l.usage || {};
      cell(row, "jobs-done", count(usage.jobs_done));
      cell(row, "gpu-seconds", number(usage.gpu_seconds, 5));
      cell(row, "hashes-foregone", si(usage.hashes_foregone, "H"));
      cell(row, "rigs-left-early", count(usage.rigs_left_early));
    }, ["remaining_s", "gpu_seconds", "hashes_foregone"]);
  }

  // /v1/policy's shape is its own: every field is shown, nested objects as dotted names.
  function showPolicy(policy) {
    const list = $("#policy-fields");
    list.textContent = "";
    const add = (prefix, value) => {
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) add(prefix ? `${prefix}.${k}` : k, v);
        return;
      }
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = prefix;
      dd.textContent = typeof value === "number" ? number(value, 6) : JSON.stringify(value);
      dd.dataset.field = prefix;
      list.append(dt, dd);
    };
    add("", policy);
    $("#policy").hidden = false;
  }

  // ------------------------------------------------------------------ the chart

  function addSample(t, point) {
    samples.set(t, { ...(samples.get(t) || {}), ...point });
    const oldest = t - CHART_WINDOW_S;
    for (const key of samples.keys()) if (key < oldest) samples.delete(key);
    drawChart();
  }

  function drawChart() {
    const times = [...samples.keys()].sort((a, b) => a - b);
    const names = new Set();
    for (const t of times) for (const name of Object.keys(samples.get(t))) names.add(name);
    const series = ["pool", ...[...names].filter((n) => n !== "pool").sort()];
    const data = [times, ...series.map((name) => times.map((t) => {
      const v = samples.get(t)[name];
      return v === undefined ? null : v;
    }))];
    if (times.length === 1) {  // one sample alone would stretch the time axis over years
      data[0] = [times[0] - 60, ...data[0]];
      for (let i = 1; i < data.length; i += 1) data[i] = [null, ...data[i]];
    }
    const box = $("#hashrate-chart");
    if (chart === null || series.join("\n") !== chartSeries.join("\n")) {
      if (chart !== null) chart.destroy();
      chartSeries = series;
      const palette = ["#2458c6", "#1b7f3b", "#a15c00", "#8e3cc2", "#b3261e", "#0f7c8c", "#6b6b00"];
      chart = new uPlot({
        width: Math.max(320, box.clientWidth),
        height: 260,
        scales: { x: { time: true } },
        axes: [{}, { values: (u, ticks) => ticks.map((v) => hashrate(v)), size: 80 }],
        series: [{}, ...series.map((name, i) => ({
          label: name,
          stroke: palette[i % palette.length],
          width: name === "pool" ? 2 : 1,
          spanGaps: true,
          value: (u, v) => hashrate(v),
        }))],
      }, data, box);
    } else {
      chart.setData(data);
    }
  }

  // Read once; if it fails the chart goes on with the page's own samples, and says why.
  async function loadHistory() {
    const since = Math.floor(Date.now() / 1000) - CHART_WINDOW_S;
    historyLoaded = true;
    let history;
    try {
      history = await api(`/v1/history?bucket=minute&since=${since}`);
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      setText("#hashrate-source", `sampled from /v1/stats by this page (${error.message})`);
      return;
    }
    for (const [name, points] of Object.entries(history.series || {})) {
      for (const p of points) {
        const t = seconds(p.t);
        if (t !== null) addSample(Math.floor(t), { [name]: p.hashrate });
      }
    }
    setText("#hashrate-source", "from /v1/history, then sampled live");
  }

  // ------------------------------------------------------------------ refresh loops

  async function refreshFast() {
    const [stats, rigs, leases] = await Promise.all([api("/v1/stats"), api("/v1/rigs"), api("/v1/leases")]);
    showStats(stats);
    showRigsAndLeases(rigs.rigs, leases.leases);
  }
  // A panel whose route answers 404 after all is dropped: blocks then come from /v1/stats.
  async function optional(panel, task) {
    if (!has(panel)) return;
    try {
      await task();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      session.routes = session.routes.filter((p) => p !== panel);
      if (panel === "policy") $("#policy").hidden = true;
    }
  }
  async function refreshSlow() {
    await optional("blocks", async () => {
      const blocks = await api("/v1/blocks");
      showBlocks(blocks.blocks || [], blocks);
    });
    await optional("policy", async () => showPolicy(await api("/v1/policy")));
    if (has("history") && !historyLoaded) await loadHistory();
  }

  function every(ms, task) {
    const mine = generation;
    const run = async () => {
      if (mine !== generation) return;
      try {
        await task();
        setStatus("live", `live, updated ${new Date().toLocaleTimeString("en-GB")}`);
      } catch (error) {
        if (error instanceof Unauthorized) { askForToken(`The API refused the token: ${error.message}`); return; }
        setStatus("error", `cannot reach the API: ${error.message}`);
      }
      setTimeout(run, ms);
    };
    return run();
  }

  function showEvent(event) {
    const item = document.createElement("li");
    item.dataset.type = event.type;
    const when = document.createElement("time");
    when.textContent = event.time ? clock(event.time).slice(11) : "";
    const { type, time, ...rest } = event;
    item.append(when, `${type} ${Object.entries(rest).map(([k, v]) => `${k}=${v}`).join(" ")}`);
    const list = $("#event-list");
    list.prepend(item);
    while (list.children.length > EVENTS_KEPT) list.lastChild.remove();
  }

  // Rigs and leases are read again soon after an event says they changed (once per 500 ms at most).
  function onEvent(event) {
    showEvent(event);
    if (refreshSoon === null) {
      refreshSoon = setTimeout(async () => {
        refreshSoon = null;
        try { await refreshFast(); } catch (error) { setStatus("error", `cannot reach the API: ${error.message}`); }
      }, 500);
    }
  }

  async function streamEvents() {
    const mine = generation;
    let delay = 1000;
    while (mine === generation) {
      try {
        const response = await fetch("/v1/events", { headers: headers(), cache: "no-store" });
        if (response.status === 401) { askForToken("The API refused the token."); return; }
        if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
        setText("#events-state", "live");
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (mine !== generation) { await reader.cancel(); return; }
          buffer += value;
          let newline;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (line) onEvent(JSON.parse(line));
          }
        }
        setText("#events-state", "reconnecting");
      } catch (error) {
        setText("#events-state", `reconnecting (${error.message})`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 30000);
    }
  }

  // ------------------------------------------------------------------ start

  function start() {
    generation += 1;
    $("#token-form").hidden = true;
    $("#panels").hidden = false;
    every(STATS_EVERY_MS, refreshFast);
    every(SLOW_EVERY_MS, refreshSlow);
    streamEvents();
  }

  async function main() {
    const response = await fetch("/dashboard/session", { cache: "no-store" });
    const info = await response.json();
    session.routes = info.routes;
    session.tokenNeeded = info.token_needed;
    setText("#hashrate-source", has("history") ? "" : "sampled from /v1/stats by this page");
    if (info.refused) {
      const refused = $("#refused");
      refused.textContent = info.refused;
      refused.hidden = false;
      setStatus("error", "refused");
      return;
    }
    $("#token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("#token-input").value);
      start();
    });
    if (session.tokenNeeded && !sessionStorage.getItem(TOKEN_KEY)) {
      askForToken("This dashboard is not on the pool's own host: the API wants its token.");
      return;
    }
    start();
  }

  window.addEventListener("resize", () => {
    if (chart !== null) chart.setSize({ width: Math.max(320, $("#hashrate-chart").clientWidth), height: 260 });
  });
  main().catch((error) => setStatus("error", `cannot start: ${error.message}`));
})();
