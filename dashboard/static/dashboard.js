"use strict";
// The dashboard's behaviour: keep the server-rendered page current from its live event stream, and run the
// write actions through the public API with the key the user entered. Every value from the server is set as
// text (textContent), never as HTML, so a job's payload or error can never become markup or script.

(() => {
  const page = document.body.dataset;
  const KEY_STORE = "starq.apiKey";
  const MAX_BATCH_JOBS = 500; // per request of a JSONL upload; the server allows 1,000
  const MAX_BATCH_BYTES = 4 * 1024 * 1024; // the server allows 10 MiB per request
  // The job statuses, as the server declares them (protocol.JOB_STATUSES), handed over by the page.
  const STATUSES = page.statuses.split(" ");
  // The statuses whose jobs POST …/purge removes (every one but claimed).
  const PURGEABLE = STATUSES.filter((s) => s !== "claimed");
  // The statuses of finished jobs (protocol.FINISHED_STATUSES); a job in any other can be cancelled.
  const FINISHED = page.finished.split(" ");
  const CANCELLABLE = STATUSES.filter((s) => !FINISHED.includes(s));

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const field = (root, name) => root.querySelector(`[data-f="${name}"]`);
  const nf = new Intl.NumberFormat("en-US");

  let clockOffset = 0; // the server's clock minus this browser's, in ms
  let status = page.status || ""; // the queue page's job filter
  let lastSnapshot = null;
  let olderCursor = null; // where "load more" continues; null until a page was loaded by hand
  let stream = null; // the AbortController of the open live stream
  let confirming = null; // what the confirmation dialog asks about: { describe(), run() }
  let settingsBase = null; // the queue's settings when the settings dialog was opened
  let targetShown = false; // whether the schedule named in the URL's #fragment was brought into view
  const searchInput = $("#job-search");
  let search = searchInput ? searchInput.value.trim() : ""; // the queue page's job search (q)
  const rangeTab = $("[data-range][aria-selected=true]");
  let chartRange = rangeTab ? rangeTab.dataset.range : ""; // the queue page's chart range
  const selected = new Set(); // the ids of the job rows ticked for a bulk action
  let keyRejected = false; // the server answered 401/403 to the stored key: it was rotated or revoked
  const KEY_REJECTED = "Key rejected: the server does not accept this key any more (it may have been rotated). Enter the current one.";

  // -- small helpers --------------------------------------------------------------------------------------

  function setText(el, value) {
    if (el && el.textContent !== value) el.textContent = value;
  }

  const serverNow = () => Date.now() + clockOffset;

  function fmtDuration(sec) {
    if (!(sec >= 0)) return "–";
    if (sec < 1) return `${Math.round(sec * 1000)} ms`;
    if (sec < 10) return `${sec.toFixed(1)} s`;
    if (sec < 60) return `${Math.floor(sec)} s`;
    if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.floor(sec % 60)} s`;
    if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
    return `${Math.floor(sec / 86400)} d ${Math.floor((sec % 86400) / 3600)} h`;
  }

  // A span of seconds as its non-zero parts: 90 → "1 min 30 s", 604800 → "7 d".
  function fmtSpan(sec) {
    if (sec === null || sec === undefined || !(sec >= 0)) return "–";
    if (sec < 60) return `${Number.isInteger(sec) ? sec : Number(sec.toFixed(3))} s`;
    let rest = Math.round(sec);
    const parts = [];
    for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]]) {
      const n = Math.floor(rest / size);
      if (n) parts.push(`${n} ${unit}`);
      rest -= n * size;
    }
    return parts.join(" ");
  }

  const plural = (n, one, many) => `${nf.format(n)} ${n === 1 ? one : many}`;

  function fmtTime(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // Elements showing an age carry the moment in data-since; a timer refreshes them without any server call.
  function showSince(el, iso, suffix) {
    if (!el) return;
    el.dataset.since = iso || "";
    el.dataset.suffix = suffix || "";
    refreshAge(el);
  }

  function refreshAge(el) {
    const iso = el.dataset.since;
    setText(el, iso ? fmtDuration(Math.max(0, (serverNow() - Date.parse(iso)) / 1000)) + el.dataset.suffix : "–");
  }

  // The same for a moment ahead (data-until): "in 3 h 2 min", then "due".
  function showUntil(el, iso) {
    el.dataset.until = iso || "";
    refreshUntil(el);
  }

  function refreshUntil(el) {
    const iso = el.dataset.until;
    if (!iso) return setText(el, "");
    const ahead = (Date.parse(iso) - serverNow()) / 1000;
    setText(el, ahead > 0.5 ? `in ${fmtDuration(ahead)}` : "due");
  }

  // Tags as chips, each one's text set as text; rebuilt only when they change.
  function showTags(el, tags) {
    const key = JSON.stringify(tags || []);
    if (el.dataset.tags === key) return;
    el.dataset.tags = key;
    el.replaceChildren(...(tags || []).map((tag) => {
      const chip = document.createElement("span");
      chip.className = "tag";
      chip.textContent = tag;
      return chip;
    }));
  }

  function toast(message, bad) {
    const t = document.createElement("div");
    t.className = bad ? "toast bad" : "toast";
    t.textContent = message;
    $("#toasts").appendChild(t);
    setTimeout(() => t.remove(), bad ? 7000 : 4000);
  }

  // Keeps a tbody's rows equal to items, reusing rows by key so nothing flickers or loses its place.
  function syncRows(tbody, items, keyOf, make, update) {
    const existing = new Map(Array.from(tbody.children).map((r) => [r.dataset.key, r]));
    items.forEach((item, i) => {
      const key = keyOf(item);
      let row = existing.get(key);
      if (row) existing.delete(key);
      else {
        row = make(item);
        row.dataset.key = key;
      }
      update(row, item);
      if (tbody.children[i] !== row) tbody.insertBefore(row, tbody.children[i] || null);
    });
    existing.forEach((row) => row.remove());
  }

  function fromTemplate(id) {
    return $(id).content.firstElementChild.cloneNode(true);
  }

  // -- the API key -----------------------------------------------------------------------------------------

  function getKey() {
    try {
      return localStorage.getItem(KEY_STORE) || "";
    } catch {
      return "";
    }
  }

  function setKey(key) {
    keyRejected = false;
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
    showKeyState();
  }

  function showKeyState() {
    const has = !!getKey();
    const locked = page.readAuth === "1" && !lastSnapshot;
    document.body.classList.toggle("read-only", !has);
    $("#readonly-note").hidden = has || locked;
    setText($("#key-button"), keyRejected ? "Key rejected" : has ? "API key ✓" : "API key");
    $("#key-button").classList.toggle("rejected", keyRejected);
    $("#key-forget").hidden = !has;
  }

  async function api(method, path, body) {
    const headers = {};
    const key = getKey();
    if (key) headers["X-API-Key"] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = new Error((data && data.detail) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      if ((res.status === 401 || res.status === 403) && key) {
        rejectKey();
        err.keyRejected = true; // the key dialog says it: no toast as well
      }
      throw err;
    }
    return data;
  }

  // The stored key no longer works: say so on the key button and ask for the current one at once, rather than
  // keep showing "API key ✓" while every write fails.
  function rejectKey() {
    keyRejected = true;
    showKeyState();
    openKeyDialog(KEY_REJECTED);
  }

  // -- dialogs ---------------------------------------------------------------------------------------------

  function openDialog(dialog) {
    const opener = document.activeElement;
    const error = $(".form-error", dialog);
    if (error) error.hidden = true;
    dialog.addEventListener("close", () => opener && opener.focus && opener.focus(), { once: true });
    dialog.showModal();
    const first = $("input:not([type=hidden]):not([disabled]), textarea", dialog);
    if (first) first.focus();
  }

  function formError(form, message) {
    const el = $(".form-error", form);
    el.textContent = message;
    el.hidden = !message;
  }

  function openKeyDialog(message) {
    const dialog = $("#key-dialog");
    if (dialog.open) {
      formError($("#key-form"), message || "");
      return;
    }
    openDialog(dialog);
    $("#key-input").value = "";
    formError($("#key-form"), message || "");
  }

  // -- the live stream -------------------------------------------------------------------------------------

  function setLive(state, label) {
    const el = $("#live-state");
    el.dataset.state = state;
    const labels = { live: "live", connecting: "connecting", offline: "reconnecting", trouble: "store unreachable",
      locked: "key needed", gone: "deleted" };
    setText($(".label", el), label || labels[state] || state);
    el.title = label || "";
  }

  function streamUrl() {
    const params = new URLSearchParams({ view: page.view });
    if (page.queue) params.set("queue", page.queue);
    if (page.job) params.set("job", page.job);
    if (page.batch) params.set("batch", page.batch);
    if (page.view === "queue" && status) params.set("status", status);
    if (page.view === "queue" && search) params.set("q", search);
    if (page.view === "queue" && chartRange) params.set("range", chartRange);
    return `/dashboard/events?${params}`;
  }

  const sleep = (ms, signal) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });

  // Reads the stream with fetch() rather than EventSource, because only fetch can send the X-API-Key header.
  async function openStream() {
    if (stream) stream.abort();
    const control = new AbortController();
    stream = control;
    let delay = 1000;
    while (!control.signal.aborted) {
      const headers = { Accept: "text/event-stream" };
      const key = getKey();
      if (key) headers["X-API-Key"] = key;
      let end = null;
      try {
        const res = await fetch(streamUrl(), { headers, signal: control.signal, cache: "no-store" });
        if (res.status === 401) {
          setLive("locked");
          showLocked(true);
          if (key) rejectKey();
          else openKeyDialog("");
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        end = await readEvents(res.body);
        delay = 1000;
      } catch {
        if (control.signal.aborted) return;
      }
      if (end === "gone") return;
      setLive("offline", end === "bye" ? "server restarting" : null);
      await sleep(delay, control.signal);
      delay = Math.min(delay * 2, 15000);
    }
  }

  // Reads server-sent events from a response body, handing each to onEvent(event, data, id); ends with what
  // onEvent returns other than undefined (why the stream ended), or null when the body ends.
  async function readSse(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        let data = "";
        let id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
          else if (line.startsWith("id:")) id = line.slice(3).trim();
        }
        if (!data) continue;
        const end = onEvent(event, JSON.parse(data), id);
        if (end !== undefined) {
          reader.cancel().catch(() => {});
          return end;
        }
      }
    }
  }

  const readEvents = (body) => readSse(body, (event, message) => {
    if (event === "snapshot") {
      clockOffset = message.now * 1000 - Date.now();
      setLive("live");
      render(message.data);
    } else if (event === "trouble") {
      setLive("trouble", message.detail);
    } else if (event === "gone") {
      showGone(message.detail);
      return "gone";
    } else if (event === "bye") {
      return "bye";
    }
    return undefined;
  });

  function showLocked(locked) {
    $("#locked").hidden = !locked;
    $("#main").hidden = locked;
    showKeyState();
  }

  function showGone(detail) {
    setLive("gone");
    const what = { job: "This job no longer exists", batch: "This batch no longer exists" }[page.view] || "This queue no longer exists";
    toast(`${what}: ${detail}`, true);
    $$("[data-needs-key]").forEach((b) => { b.disabled = true; });
  }

  // -- rendering -------------------------------------------------------------------------------------------

  function render(data) {
    lastSnapshot = data;
    if (!$("#locked").hidden) showLocked(false);
    if (data.view === "overview") renderOverview(data);
    else if (data.view === "queue") renderQueue(data);
    else if (data.view === "job") renderJob(data);
    else if (data.view === "batch") renderBatch(data);
  }

  function renderOverview(data) {
    const grid = $("#queue-grid");
    const cards = new Map(Array.from(grid.children).map((c) => [c.dataset.name, c]));
    let pending = 0;
    let claimed = 0;
    data.queues.forEach((q, i) => {
      let card = cards.get(q.name);
      if (card) cards.delete(q.name);
      else {
        card = fromTemplate("#card-template");
        card.dataset.name = q.name;
        field(card, "link").href = `/queues/${encodeURIComponent(q.name)}`;
        field(card, "name").textContent = q.name;
      }
      if (grid.children[i] !== card) grid.insertBefore(card, grid.children[i] || null);
      setText(field(card, "description"), q.description);
      field(card, "description").title = q.description;
      field(card, "paused").hidden = !q.paused;
      card.classList.toggle("paused", q.paused);
      for (const el of $$("[data-count]", card)) showCount(el, q.counts[el.dataset.count]);
      showSince(field(card, "oldest"), q.oldest_pending_at, "");
      setText(field(card, "workers"), nf.format(q.workers));
      setText(field(card, "workers-word"), q.workers === 1 ? "worker" : "workers");
      Charts.throughput(field(card, "spark"), q.throughput, { compact: true });
      pending += q.counts.pending;
      claimed += q.counts.claimed;
    });
    cards.forEach((card) => card.remove());
    $("#no-queues").hidden = data.queues.length > 0;
    const n = data.queues.length;
    setText($("#overview-summary"), `${nf.format(n)} ${n === 1 ? "queue" : "queues"} · ${nf.format(pending)} pending · ${nf.format(claimed)} claimed`);
  }

  // A count, with its length as a data attribute: the CSS sets long counts smaller so they never overlap.
  function showCount(el, n) {
    const text = nf.format(n);
    setText(el, text);
    const len = text.length > 7 ? "huge" : text.length > 5 ? "long" : "";
    if (el.dataset.len !== len) el.dataset.len = len;
    el.title = text;
  }

  function median(sorted, q) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  function renderQueue(data) {
    const q = data.queue;
    for (const s of STATUSES) showCount($(`[data-count="${s}"]`), q.counts[s]);
    $("#paused-badge").hidden = !q.paused;
    setText($("#pause-button"), q.paused ? "Resume" : "Pause");
    $("#pause-button").dataset.paused = q.paused ? "1" : "0";
    $("#retry-all-button").disabled = q.counts.failed === 0;
    setText($("#queue-description"), q.description);
    showTabs();
    Charts.throughput($("#throughput-chart"), data.throughput, { now: serverNow() });
    Charts.waits($("#wait-chart"), data.waits, serverNow());
    const waits = data.waits.map((p) => p.wait).sort((a, b) => a - b);
    setText($("#wait-median"), waits.length ? fmtDuration(median(waits, 0.5)) : "–");
    setText($("#wait-p95"), waits.length ? fmtDuration(median(waits, 0.95)) : "–");
    showSince($("#oldest-pending"), q.oldest_pending_at, "");

    syncRows($("#worker-rows"), data.workers, (w) => w.name, () => fromTemplate("#worker-row-template"), (row, w) => {
      setText(field(row, "name"), w.name);
      showSince(field(row, "seen"), w.last_seen, " ago");
      setText(field(row, "inhand"), nf.format(w.jobs_in_hand));
    });
    $("#no-workers").hidden = data.workers.length > 0;
    $("#workers-table").hidden = data.workers.length === 0;
    renderSettings(q.settings);
    showEventLog(q.settings.events);
    renderSchedules(data.schedules);
    showPurge(q.counts);

    // A snapshot of the tab or search the user just left.
    if (data.jobs.status !== status || data.jobs.q !== search) return;
    syncRows($("#job-rows"), data.jobs.rows, (j) => j.id, makeJobRow, updateJobRow);
    const live = new Set(data.jobs.rows.map((j) => j.id));
    $$("#older-rows tr").forEach((row) => { if (live.has(row.dataset.key)) row.remove(); });
    if (olderCursor === null) {
      $("#load-more").hidden = !data.jobs.has_more;
      $("#load-more").dataset.cursor = data.jobs.cursor;
    }
    const none = data.jobs.rows.length === 0 && !$("#older-rows tr");
    $("#no-jobs").hidden = !none;
    setText($("#no-jobs"), search ? `No ${status ? `${status} ` : ""}jobs match “${search}”${data.jobs.has_more ? " among the newest looked at: Load more goes on" : ""}.` : "No jobs here.");
    $("#search-note").hidden = !search;
    showSelection();
  }

  const jobPath = (id) => `/queues/${encodeURIComponent(page.queue)}/jobs/${encodeURIComponent(id)}`;
  const shortId = (id) => id.slice(0, 8) + "…" + id.slice(-4);

  function makeJobRow(job) {
    const row = fromTemplate("#job-row-template");
    const link = field(row, "link");
    link.href = jobPath(job.id);
    field(row, "id").textContent = shortId(job.id);
    link.title = job.id;
    const promote = field(row, "promote");
    promote.dataset.job = job.id;
    promote.setAttribute("aria-label", `Run now: job ${shortId(job.id)}`);
    field(row, "pick").setAttribute("aria-label", `Select job ${shortId(job.id)}`);
    return row;
  }

  function describeRate(limit) {
    if (!limit) return "none";
    const per = limit.per_ms % 1000 === 0 ? fmtSpan(limit.per_ms / 1000) : `${nf.format(limit.per_ms)} ms`;
    return `${plural(limit.max, "job", "jobs")} per ${per}`;
  }

  function renderSettings(settings) {
    const shown = {
      max_retries: nf.format(settings.max_retries),
      claim_timeout: fmtSpan(settings.claim_timeout),
      retry_delay: settings.retry_delay > 0
        ? `${fmtSpan(settings.retry_delay)}, doubling to ${fmtSpan(settings.retry_delay_max)}`
        : "none: retried at once",
      retention: fmtSpan(settings.retention),
      dedupe: settings.dedupe ? "yes" : "no",
      rate_limit: describeRate(settings.rate_limit),
      concurrency: settings.concurrency ? `${nf.format(settings.concurrency)} at once` : "unlimited",
      key_concurrency: settings.key_concurrency ? `${nf.format(settings.key_concurrency)} at once per key` : "unlimited",
      events: settings.events ? `on, about ${nf.format(settings.events_max)} kept` : "off",
    };
    for (const el of $$("[data-setting]")) setText(el, shown[el.dataset.setting]);
  }

  function renderSchedules(schedules) {
    syncRows($("#schedule-rows"), schedules, (s) => s.name, (s) => {
      const row = fromTemplate("#schedule-row-template");
      row.id = `schedule-${s.name}`;
      field(row, "name").textContent = s.name;
      field(row, "delete").setAttribute("aria-label", `Delete schedule ${s.name}`);
      return row;
    }, (row, s) => {
      field(row, "paused").hidden = !s.paused;
      row.classList.toggle("paused", s.paused);
      setText(field(row, "when"), s.cron ? s.cron : `every ${fmtSpan(s.every)}`);
      setText(field(row, "zone"), s.cron ? s.timezone : "");
      setText(field(row, "next"), s.paused ? "paused" : fmtTime(s.next_run_at));
      showUntil(field(row, "next-in"), s.paused ? "" : s.next_run_at);
      const link = field(row, "last-link");
      link.hidden = !s.last_run_at;
      field(row, "never").hidden = !!s.last_run_at;
      setText(field(row, "last"), fmtTime(s.last_run_at));
      if (s.last_job_id) {
        link.href = jobPath(s.last_job_id);
        link.title = `job ${s.last_job_id}`;
      } else link.removeAttribute("href");
      setText(field(row, "payload"), s.payload);
      field(row, "payload").title = s.payload;
      const toggle = field(row, "toggle");
      toggle.dataset.paused = s.paused ? "1" : "0";
      setText(toggle, s.paused ? "Resume" : "Pause");
      toggle.setAttribute("aria-label", `${s.paused ? "Resume" : "Pause"} schedule ${s.name}`);
    });
    $("#no-schedules").hidden = schedules.length > 0;
    $("#schedules-table").hidden = schedules.length === 0;
    // A link to a schedule (from a job's page) names its row in the URL's fragment: bring it into view once.
    if (!targetShown && location.hash.startsWith("#schedule-")) {
      const row = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (row) {
        targetShown = true;
        row.classList.add("target");
        row.scrollIntoView({ block: "center" });
      }
    }
  }

  // The purge button follows the chosen status tab: "Purge failed…" while failed jobs are listed.
  function showPurge(counts) {
    const button = $("#purge-button");
    const purgeable = PURGEABLE.includes(status);
    button.hidden = !purgeable;
    if (!purgeable) return;
    setText(button, `Purge ${status}…`);
    button.disabled = counts[status] === 0;
    button.dataset.status = status;
    if (confirming && $("#confirm-dialog").open) showConfirm();
  }

  function updateJobRow(row, job) {
    const badge = field(row, "status");
    badge.className = `status s-${job.status}`;
    setText(field(row, "status-text"), job.status);
    setText(field(row, "priority"), String(job.priority));
    setText(field(row, "retries"), String(job.retries));
    setText(field(row, "created"), fmtTime(job.created_at));
    const preview = job.status === "failed" && job.error ? `${job.error} · ${job.payload}` : job.payload;
    setText(field(row, "payload"), preview);
    field(row, "payload").title = preview;
    showTags(field(row, "tags"), job.tags);
    field(row, "promote").hidden = job.status !== "scheduled";
    field(row, "pick").checked = selected.has(job.id);
    setText(field(row, "run-at"), job.run_at ? fmtTime(job.run_at) : "–");
    showUntil(field(row, "run-in"), job.status === "scheduled" ? job.run_at : "");
  }

  function showTabs() {
    $$("[data-status-tab]").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.statusTab === status)));
    $$(".strip [data-tab]").forEach((t) => t.classList.toggle("current", t.dataset.tab === status));
    // When a scheduled job runs is what the scheduled tab is about.
    $("#jobs-table").classList.toggle("show-run-at", status === "scheduled");
  }

  // The job table starts over for a new status tab or search: its rows, older pages and selection go.
  function restartTable() {
    const url = new URL(location.href);
    for (const [name, value] of [["status", status], ["q", search]]) {
      if (value) url.searchParams.set(name, value);
      else url.searchParams.delete(name);
    }
    history.replaceState(null, "", url);
    olderCursor = null;
    $("#job-rows").replaceChildren();
    $("#older-rows").replaceChildren();
    $("#load-more").hidden = true;
    $("#no-jobs").hidden = true;
    selected.clear();
    showBulkResult(null);
    showTabs();
    if (lastSnapshot && lastSnapshot.view === "queue") showPurge(lastSnapshot.queue.counts);
    openStream();
  }

  function chooseStatus(next) {
    if (next === status) return;
    status = next;
    restartTable();
  }

  let searching = null; // the timer that starts a search once typing pauses

  function onSearchInput() {
    clearTimeout(searching);
    searching = setTimeout(() => {
      const next = searchInput.value.trim();
      if (next === search) return;
      search = next;
      restartTable();
    }, 250);
  }

  function chooseRange(next) {
    if (next === chartRange) return;
    chartRange = next;
    $$("[data-range]").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.range === next)));
    const url = new URL(location.href);
    url.searchParams.set("range", next);
    history.replaceState(null, "", url);
    openStream();
  }

  // -- selecting jobs and bulk actions ---------------------------------------------------------------------

  const MAX_BULK = Number(($("#bulk-bar") || document.body).dataset.max || 1000); // ids per request
  const shownJobIds = () => $$("#job-rows tr, #older-rows tr").map((r) => r.dataset.key);

  // Keeps the selection to jobs still shown (a retried job leaves the failed tab) and the bar in step with it.
  function showSelection() {
    const bar = $("#bulk-bar");
    if (!bar) return;
    const shown = new Set(shownJobIds());
    for (const id of Array.from(selected)) if (!shown.has(id)) selected.delete(id);
    const n = selected.size;
    setText($("#bulk-count"), `${plural(n, "job", "jobs")} selected`);
    $$("[data-bulk]", bar).forEach((b) => { b.disabled = n === 0; });
    bar.hidden = n === 0 && $("#bulk-result").hidden;
    const all = $("#pick-all");
    all.checked = n > 0 && n === shown.size;
    all.indeterminate = n > 0 && n < shown.size;
    $$("#job-rows tr, #older-rows tr").forEach((row) => { field(row, "pick").checked = selected.has(row.dataset.key); });
  }

  function onPick(event) {
    const box = event.target;
    if (box.id === "pick-all") {
      for (const id of shownJobIds()) box.checked ? selected.add(id) : selected.delete(id);
    } else if (box.dataset.f === "pick") {
      const id = box.closest("tr").dataset.key;
      box.checked ? selected.add(id) : selected.delete(id);
    } else return;
    showSelection();
  }

  // What each bulk action did to a job, as the summary says it.
  const BULK_DONE = { retry: "back to pending", promote: "pending now", cancel: "cancelled", delete: "deleted" };

  async function runBulk(action, ids) {
    const results = [];
    for (let i = 0; i < ids.length; i += MAX_BULK) {
      const res = await api("POST", `${queuePath()}/jobs/bulk`, { action, ids: ids.slice(i, i + MAX_BULK) });
      results.push(...res.results);
    }
    selected.clear();
    showBulkResult(action, results);
  }

  // The per-item outcome of a bulk action: how many were done, and each refused job with the reason.
  function showBulkResult(action, results) {
    const box = $("#bulk-result");
    if (!box) return;
    if (!action) {
      box.hidden = true;
      showSelection();
      return;
    }
    const done = results.filter((r) => r.ok).length;
    const refused = results.filter((r) => !r.ok);
    let text = `${plural(done, "job", "jobs")} ${BULK_DONE[action]}`;
    if (refused.length) text += `; ${plural(refused.length, "job", "jobs")} refused:`;
    else text += ".";
    setText($("#bulk-summary"), text);
    box.classList.toggle("bad", refused.length > 0);
    const shown = refused.slice(0, 20).map((r) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = jobPath(r.job_id);
      link.className = "mono";
      link.textContent = shortId(r.job_id);
      link.title = r.job_id;
      li.append(link, ` ${r.detail} (${r.error})`);
      return li;
    });
    if (refused.length > shown.length) {
      const li = document.createElement("li");
      li.textContent = `and ${plural(refused.length - shown.length, "more", "more")}`;
      shown.push(li);
    }
    $("#bulk-errors").replaceChildren(...shown);
    box.hidden = false;
    showSelection();
  }

  async function loadMore() {
    const button = $("#load-more");
    const cursor = olderCursor === null ? button.dataset.cursor : olderCursor;
    if (!cursor) return;
    button.disabled = true;
    try {
      const params = new URLSearchParams({ count: "50", cursor });
      if (status) params.set("status", status);
      if (search) params.set("q", search);
      const page_ = await api("GET", `/api/v1/queues/${encodeURIComponent(page.queue)}/jobs?${params}`);
      const older = $("#older-rows");
      const shown = new Set($$("#job-rows tr, #older-rows tr").map((r) => r.dataset.key));
      for (const job of page_.jobs) {
        if (shown.has(job.id)) continue;
        const row = makeJobRow(job);
        row.dataset.key = job.id;
        updateJobRow(row, { ...job, payload: JSON.stringify(job.payload) });
        older.appendChild(row);
      }
      olderCursor = page_.cursor;
      button.hidden = !page_.has_more;
      $("#no-jobs").hidden = !!$("#job-rows tr, #older-rows tr");
      showSelection();
    } catch (err) {
      toast(`Could not load more jobs: ${err.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  const HISTORY_DETAILS = ["worker", "lease", "error", "status", "retries", "run_at", "until", "reason"];
  // Fields of the job page shown in words rather than as they are.
  const WORDS = { on_dependency_failure: { cancel: "it is cancelled", run: "it runs anyway" } };

  function renderJob(data) {
    const job = data.job;
    const badge = $("#job-status");
    badge.className = `status s-${job.status}`;
    setText($(".status-text", badge), job.status);
    for (const el of $$("[data-jf]")) {
      const name = el.dataset.jf;
      const value = job[name];
      const unset = value === "" || value === null || value === undefined;
      let text;
      if (name.endsWith("_at")) text = fmtTime(value);
      else if (!unset && WORDS[name]) text = WORDS[name][value] || String(value);
      else if (unset) text = el.dataset.unset && (name !== "unique_for" || job.unique_key) ? el.dataset.unset : "–";
      else text = el.dataset.kind === "seconds" ? fmtSpan(value) : String(value);
      setText(el, text);
    }
    showTags($("#job-tags"), job.tags);
    const schedule = $("#job-schedule");
    schedule.hidden = !job.schedule;
    $("#no-schedule").hidden = !!job.schedule;
    if (job.schedule) {
      setText(schedule, job.schedule);
      schedule.href = `/queues/${encodeURIComponent(job.queue)}#schedule-${encodeURIComponent(job.schedule)}`;
    }
    const batch = $("#job-batch");
    batch.hidden = !job.batch_id;
    $("#no-batch").hidden = !!job.batch_id;
    if (job.batch_id) {
      setText(batch, shortId(job.batch_id));
      batch.title = `batch ${job.batch_id}`;
      batch.href = batchPath(job.batch_id);
    }
    renderProgress(job);
    renderRelated(job);
    setText($("#job-payload"), job.payload);
    setText($("#job-result"), job.result);
    $("#job-result").hidden = !job.result;
    $("#no-result").hidden = !!job.result;
    showError($("#job-error"), job.error, job.error_dependency);
    $("#error-panel").hidden = !job.error;
    // A job that was retried after a failure keeps the error of that earlier attempt; one cancelled because a
    // dependency failed has that as its error.
    let errorTitle = "Error of an earlier attempt";
    if (job.status === "failed") errorTitle = "Error";
    else if (job.status === "cancelled" && job.error_dependency) errorTitle = "Cancelled: a dependency failed";
    setText($("#error-title"), errorTitle);
    $("#retry-job").hidden = !["failed", "cancelled"].includes(job.status);
    $("#promote-job").hidden = job.status !== "scheduled";
    $("#cancel-job").hidden = !CANCELLABLE.includes(job.status);
    // An event about a lease (failed, completed, extended, released) was the doing of the worker that claimed it.
    const holders = {};
    const history = job.history.map((e) => {
      if (e.event === "claimed" && e.lease) holders[e.lease] = e.worker;
      return e.worker || !e.lease || !holders[e.lease] ? e : { ...e, worker: holders[e.lease] };
    });
    syncRows($("#history"), history, (e) => `${e.at}|${e.event}|${JSON.stringify(e)}`,
      () => fromTemplate("#history-row-template"), updateHistoryRow);
  }

  // The status a history event left the job in: its own when it names one, else scheduled when it set a run_at,
  // else the one the event means (protocol.HISTORY_EVENT_STATUS, handed over by the page).
  const HISTORY_STATUS = JSON.parse(page.historyStatus);
  const statusAfter = (e) => e.status || (e.run_at ? "scheduled" : HISTORY_STATUS[e.event]) || "";
  // A history event's error shows its first line; the whole text is a click away.
  const ERROR_LINE = 120;

  function updateHistoryRow(row, e) {
    row.className = `ev-${e.event}`;
    setText(field(row, "when"), fmtTime(e.at));
    setText(field(row, "event"), e.event);
    setText(field(row, "worker"), e.worker || "");
    const state = statusAfter(e);
    field(row, "status").hidden = !state;
    field(row, "status").className = `status s-${state}`;
    setText(field(row, "status-text"), state);
    showHistoryError(field(row, "error"), e.error || "");
    const parts = [];
    for (const name of HISTORY_DETAILS) {
      if (["worker", "error", "status"].includes(name) || e[name] === undefined || e[name] === "") continue;
      const value = name.endsWith("_at") || name === "until" ? fmtTime(e[name]) : String(e[name]);
      parts.push([name, value]);
    }
    const detail = field(row, "detail");
    const key = JSON.stringify(parts);
    if (detail.dataset.parts === key) return;
    detail.dataset.parts = key;
    detail.replaceChildren();
    parts.forEach(([name, value], i) => {
      if (i) detail.appendChild(document.createTextNode(" · "));
      detail.appendChild(document.createTextNode(`${name} `));
      const code = document.createElement("code");
      code.textContent = value;
      detail.appendChild(code);
    });
  }

  function showHistoryError(cell, error) {
    if (cell.dataset.error === error) return;
    cell.dataset.error = error;
    const lines = error.split(/\r?\n/);
    let first = lines[0];
    if (first.length > ERROR_LINE) first = first.slice(0, ERROR_LINE - 1) + "…";
    if (first === error) {
      cell.textContent = error;
      return;
    }
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = first;
    const full = document.createElement("pre");
    full.className = "code error-text";
    full.textContent = error;
    details.append(summary, full);
    cell.replaceChildren(details);
  }

  // -- workflows: progress, dependencies, batches, the queue's recent events ------------------------------

  const batchPath = (id) => `/queues/${encodeURIComponent(page.queue)}/batches/${encodeURIComponent(id)}`;

  // An error as text; the dependency it names (a job cancelled because of it) as a link to that job.
  function showError(el, error, dependency) {
    const key = JSON.stringify([error, dependency]);
    if (el.dataset.shown === key) return;
    el.dataset.shown = key;
    const at = dependency ? error.indexOf(dependency) : -1;
    if (at < 0) {
      el.textContent = error;
      return;
    }
    const link = document.createElement("a");
    link.href = jobPath(dependency);
    link.textContent = dependency;
    el.replaceChildren(error.slice(0, at), link, error.slice(at + dependency.length));
  }

  // The job's latest progress report: a bar when the server read it as one (done of total), and the value as
  // JSON unless it is a bare percentage the bar already says.
  function renderProgress(job) {
    const p = job.progress;
    $("#progress-panel").hidden = !p;
    if (!p) return;
    setText($("#progress-when"), job.status === "claimed" ? "the latest report, live" : "the last report");
    const bar = p.total !== undefined;
    $("#progress-bar-box").hidden = !bar;
    if (bar) {
      const progress = $("#progress-bar");
      progress.max = p.total;
      progress.value = Math.min(Math.max(p.done, 0), p.total);
      const percent = `${nf.format(Math.round((1000 * p.done) / p.total) / 10)} %`;
      let text = percent;
      if (p.unit !== "%") text = `${nf.format(p.done)} of ${nf.format(p.total)}${p.unit ? ` ${p.unit}` : ""} · ${percent}`;
      setText($("#progress-text"), text);
    }
    const plainPercent = bar && p.unit === "%" && typeof JSON.parse(p.json) === "number";
    $("#progress-json").hidden = plainPercent;
    setText($("#progress-json"), p.json);
  }

  // One list of related jobs (what the job waits for, what waits for it): each a link with its status when the
  // server read it, then how many more there are.
  function renderRelatedList(list, items, total, more, none) {
    syncRows(list, items, (j) => j.id, (j) => {
      const li = fromTemplate("#related-template");
      const link = field(li, "link");
      link.href = jobPath(j.id);
      link.textContent = j.id;
      return li;
    }, (li, j) => {
      const badge = field(li, "status");
      badge.hidden = !j.status;
      badge.className = `status s-${j.status}`;
      setText(field(li, "status-text"), j.status || "");
    });
    none.hidden = total > 0;
    const read = items.filter((j) => j.status).length;
    const notes = [];
    if (read < items.length) notes.push(`The first ${nf.format(read)} are shown with their status; each job's page shows its own.`);
    if (total > items.length) notes.push(`And ${plural(total - items.length, "more job", "more jobs")}, not listed here.`);
    more.hidden = !notes.length;
    setText(more, notes.join(" "));
  }

  function renderRelated(job) {
    $("#deps-panels").hidden = !job.depends_on_total && !job.dependents_total;
    renderRelatedList($("#depends-on"), job.depends_on, job.depends_on_total, $("#depends-more"), $("#no-depends"));
    renderRelatedList($("#dependents"), job.dependents, job.dependents_total, $("#dependents-more"), $("#no-dependents"));
  }

  // The parts of a batch's bar, and what each is called ("pending" counts every job not finished yet).
  const BATCH_PARTS = { completed: "completed", failed: "failed", cancelled: "cancelled", pending: "unfinished" };

  function renderBatch(data) {
    const b = data.batch;
    const state = $("#batch-state");
    setText(state, b.finished ? "finished" : "running");
    state.className = `badge ${b.finished ? "badge-finished" : "badge-running"}`;
    for (const el of $$("[data-bf]")) {
      const name = el.dataset.bf;
      setText(el, name.endsWith("_at") ? (b[name] ? fmtTime(b[name]) : "not yet") : nf.format(b[name]));
    }
    const done = b.total - b.pending;
    const summary = `${nf.format(done)} of ${nf.format(b.total)} finished`;
    setText($("#batch-summary"), summary);
    for (const part of Object.keys(BATCH_PARTS)) {
      const el = $(`[data-part="${part}"]`);
      el.hidden = b[part] === 0;
      el.style.flexGrow = String(b[part]);
      el.title = `${nf.format(b[part])} ${BATCH_PARTS[part]}`;
    }
    const parts = Object.entries(BATCH_PARTS).map(([p, label]) => `${nf.format(b[p])} ${label}`);
    $("#batch-bar").setAttribute("aria-label", `${summary}: ${parts.join(", ")}`);

    const link = $("#callback-link");
    const badge = $("#callback-status");
    const shown = b.callback;
    link.hidden = !shown;
    badge.hidden = !shown;
    let note = "";
    if (!b.callback_job_id) note = "none";
    else if (!b.finished) note = "submitted once every job of the batch has finished";
    else if (!shown) note = `${b.callback_job_id}, submitted to another queue`;
    setText($("#callback-note"), note);
    if (shown) {
      link.href = jobPath(shown.id);
      setText(link, shown.id);
      badge.className = `status s-${shown.status}`;
      setText($(".status-text", badge), shown.status);
    }
  }

  // The queue's recent events, from the dashboard's own stream of its event log (GET /dashboard/job-events),
  // open while the queue's events setting is on. After a break it resumes after the last event it showed.
  let eventLog = null; // the AbortController of the open event-log stream
  let lastEventId = null;

  function showEventLog(on) {
    $("#events-on").hidden = !on;
    $("#events-off").hidden = on;
    if (on && !eventLog) followEventLog();
    else if (!on && eventLog) {
      eventLog.abort();
      eventLog = null;
      setText($("#events-state"), "");
    }
  }

  async function followEventLog() {
    const control = new AbortController();
    eventLog = control;
    let delay = 1000;
    $("#no-events").hidden = $("#event-rows").children.length > 0;
    while (!control.signal.aborted) {
      const headers = { Accept: "text/event-stream" };
      const key = getKey();
      if (key) headers["X-API-Key"] = key;
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      let end = null;
      try {
        const res = await fetch(`/dashboard/job-events?queue=${encodeURIComponent(page.queue)}`,
          { headers, signal: control.signal, cache: "no-store" });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        setText($("#events-state"), "");
        end = await readSse(res.body, onLogEvent);
        delay = 1000;
      } catch {
        if (control.signal.aborted) return;
      }
      if (end === "gone") return;
      setText($("#events-state"), "reconnecting…");
      await sleep(delay, control.signal);
      delay = Math.min(delay * 2, 15000);
    }
  }

  function onLogEvent(event, data, id) {
    if (event === "job") {
      lastEventId = id;
      addEventRow(data, id);
    } else if (event === "dropped") {
      showDropped(data);
    } else if (["gone", "bye", "trouble"].includes(event)) {
      return event;
    }
    return undefined;
  }

  const EVENT_DETAILS = ["worker", "retries", "error", "progress"];

  function addRow(row) {
    const rows = $("#event-rows");
    rows.insertBefore(row, rows.firstElementChild);
    while (rows.children.length > Number(rows.dataset.keep)) rows.lastElementChild.remove();
    $("#no-events").hidden = true;
  }

  // Events the log's cap removed before this page saw them (it was away, or fell behind): a note above the
  // table says how many, in all, and when that last happened (rows would soon scroll out of the panel).
  let eventsMissed = 0;

  function showDropped(d) {
    eventsMissed += d.oldest - d.after - 1;
    const now = fmtTime(new Date(Date.now() + clockOffset).toISOString()).slice(11);
    const note = $("#events-dropped");
    setText(note, `${plural(eventsMissed, "event", "events")} left the log before this page saw them (last at ${now}): the queue keeps only about events_max events.`);
    note.hidden = false;
  }

  function addEventRow(e, id) {
    const rows = $("#event-rows");
    if (rows.querySelector(`tr[data-key="${id}"]`)) return;
    const row = fromTemplate("#event-row-template");
    row.dataset.key = id;
    row.className = `ev-${e.event}`;
    const when = field(row, "when");
    when.textContent = fmtTime(e.at).slice(11);
    when.title = fmtTime(e.at);
    field(row, "event").textContent = e.event;
    const link = field(row, "link");
    link.href = jobPath(e.job_id);
    link.textContent = shortId(e.job_id);
    link.title = e.job_id;
    field(row, "status").className = `status s-${e.status}`;
    field(row, "status-text").textContent = e.status;
    const parts = EVENT_DETAILS.filter((name) => e[name] !== undefined && e[name] !== "" && e[name] !== null)
      .map((name) => `${name} ${typeof e[name] === "string" ? e[name] : JSON.stringify(e[name])}`);
    field(row, "detail").textContent = parts.join(" · ");
    addRow(row);
  }

  // -- write actions ---------------------------------------------------------------------------------------

  const queuePath = () => `/api/v1/queues/${encodeURIComponent(page.queue)}`;

  async function act(button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      if (!err.keyRejected) toast(err.message, true);
    } finally {
      button.disabled = false;
      if (lastSnapshot) render(lastSnapshot); // buttons that depend on the data (retry-all) follow it again
    }
  }

  const actions = {
    "open-key": () => openKeyDialog(),
    "close-dialog": (button) => button.closest("dialog").close(),
    "forget-key": (button) => {
      setKey("");
      button.closest("dialog").close();
      toast("Key forgotten: the dashboard is read-only.");
      if (page.readAuth === "1") location.reload();
    },
    "open-create": () => openDialog($("#create-dialog")),
    "open-submit": () => openDialog($("#submit-dialog")),
    "open-delete": () => {
      $("#dq-confirm").value = "";
      $("#delete-confirm").disabled = true;
      openDialog($("#delete-dialog"));
    },
    "toggle-pause": (button) => act(button, async () => {
      const pausing = button.dataset.paused !== "1";
      await api("POST", `${queuePath()}/${pausing ? "pause" : "resume"}`);
      toast(pausing ? "Queue paused: it hands out no jobs." : "Queue resumed.");
    }),
    "retry-all": () => askConfirm({
      describe: () => {
        const n = lastSnapshot.queue.counts.failed;
        return {
          title: `Retry the failed jobs of ${page.queue}?`,
          text: `The ${plural(n, "failed job", "failed jobs")} of ${page.queue} go back to pending with their retries reset, and workers run ${n === 1 ? "it" : "them"} again.`,
          button: `Retry ${plural(n, "job", "jobs")}`,
        };
      },
      run: async () => {
        const res = await api("POST", `${queuePath()}/retry`);
        toast(`${nf.format(res.retried)} failed ${res.retried === 1 ? "job" : "jobs"} back to pending.`);
      },
    }),
    "bulk": (button) => {
      const action = button.dataset.bulk;
      const ids = Array.from(selected);
      if (!ids.length) return;
      if (action !== "delete") {
        act(button, () => runBulk(action, ids));
        return;
      }
      askConfirm({
        describe: () => ({
          title: `Delete ${plural(ids.length, "job", "jobs")} of ${page.queue}?`,
          text: `Finished jobs (${FINISHED.join(", ")}) among them are removed for good; any other is refused and stays.`,
          button: `Delete ${plural(ids.length, "job", "jobs")}`,
        }),
        run: () => runBulk("delete", ids),
      });
    },
    "bulk-clear": () => {
      selected.clear();
      showBulkResult(null);
    },
    "load-more": () => loadMore(),
    "retry-job": (button) => act(button, async () => {
      await api("POST", `${queuePath()}/jobs/${encodeURIComponent(page.job)}/retry`);
      toast("Job back to pending.");
    }),
    "cancel-job": (button) => act(button, async () => {
      const wasClaimed = lastSnapshot && lastSnapshot.job && lastSnapshot.job.status === "claimed";
      await api("DELETE", `${queuePath()}/jobs/${encodeURIComponent(page.job)}`);
      toast(wasClaimed ? "Job cancelled: its worker is told at its next extend or report." : "Job cancelled.");
    }),
    "promote-job": (button) => act(button, async () => {
      await api("POST", `${queuePath()}/jobs/${encodeURIComponent(page.job)}/promote`);
      toast("Job pending now: it runs at the next claim.");
    }),
    "promote-row": (button) => act(button, async () => {
      await api("POST", `${queuePath()}/jobs/${encodeURIComponent(button.dataset.job)}/promote`);
      toast(`Job ${shortId(button.dataset.job)} pending now.`);
    }),
    "open-settings": () => openSettings(),
    "open-schedule": () => {
      fillZones();
      openDialog($("#schedule-dialog"));
    },
    "toggle-schedule": (button) => act(button, async () => {
      const name = button.closest("tr").dataset.key;
      const pausing = button.dataset.paused !== "1";
      await api("PATCH", `${queuePath()}/schedules/${encodeURIComponent(name)}`, { paused: pausing });
      toast(pausing ? `Schedule ${name} paused.` : `Schedule ${name} resumed.`);
    }),
    "delete-schedule": (button) => {
      const name = button.closest("tr").dataset.key;
      askConfirm({
        describe: () => ({
          title: `Delete schedule “${name}”?`,
          text: `It submits no more jobs to ${page.queue}. The jobs it made stay.`,
          button: "Delete schedule",
        }),
        run: async () => {
          await api("DELETE", `${queuePath()}/schedules/${encodeURIComponent(name)}`);
          toast(`Schedule ${name} deleted.`);
        },
      });
    },
    "purge": (button) => {
      const which = button.dataset.status;
      askConfirm({
        describe: () => {
          const n = lastSnapshot.queue.counts[which];
          const unrun = which === "pending" || which === "scheduled";
          return {
            title: `Purge ${which} jobs of ${page.queue}?`,
            text: `This removes the ${plural(n, `${which} job`, `${which} jobs`)} of ${page.queue} for good${unrun ? (n === 1 ? "; it will never run." : "; they will never run.") : "."}`,
            button: `Purge ${plural(n, "job", "jobs")}`,
          };
        },
        run: async () => {
          const res = await api("POST", `${queuePath()}/purge`, { status: which });
          toast(`Purged ${plural(res.purged, `${which} job`, `${which} jobs`)}.`);
        },
      });
    },
  };

  // -- the queue page's dialogs: settings, schedules, confirmations ----------------------------------------

  function openSettings() {
    if (!lastSnapshot || lastSnapshot.view !== "queue") return;
    settingsBase = { ...lastSnapshot.queue.settings };
    const f = $("#settings-form").elements;
    for (const name of ["description", "max_retries", "claim_timeout", "retry_delay", "retry_delay_max", "retention",
      "concurrency", "key_concurrency"]) f[name].value = String(settingsBase[name]);
    f.dedupe.checked = settingsBase.dedupe;
    f.events.checked = settingsBase.events;
    f.events_max.value = String(settingsBase.events_max);
    const limit = settingsBase.rate_limit;
    f.rate_on.checked = !!limit;
    f.rate_max.value = String(limit ? limit.max : 10);
    f.rate_per_ms.value = String(limit ? limit.per_ms : 1000);
    showRateFields();
    showEventFields();
    openDialog($("#settings-dialog"));
  }

  function showRateFields() {
    const f = $("#settings-form").elements;
    f.rate_max.disabled = !f.rate_on.checked;
    f.rate_per_ms.disabled = !f.rate_on.checked;
  }

  function showEventFields() {
    const f = $("#settings-form").elements;
    f.events_max.disabled = !f.events.checked;
  }

  let zonesFilled = false;

  function fillZones() {
    if (zonesFilled || typeof Intl.supportedValuesOf !== "function") return;
    zonesFilled = true;
    const list = $("#ns-zones");
    for (const zone of ["UTC", ...Intl.supportedValuesOf("timeZone")]) {
      const option = document.createElement("option");
      option.value = zone;
      list.appendChild(option);
    }
  }

  function showKindPanels() {
    const kind = $("#schedule-form").elements.kind.value;
    $$("[data-kind-panel]").forEach((p) => { p.hidden = p.dataset.kindPanel !== kind; });
  }

  function showConfirm() {
    const said = confirming.describe();
    setText($("#confirm-title"), said.title);
    setText($("#confirm-text"), said.text);
    setText($("#confirm-button"), said.button);
  }

  function askConfirm(what) {
    confirming = what;
    showConfirm();
    openDialog($("#confirm-dialog"));
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button && actions[button.dataset.action]) {
      event.preventDefault();
      actions[button.dataset.action](button);
      return;
    }
    const range = event.target.closest("[data-range]");
    if (range) {
      chooseRange(range.dataset.range);
      return;
    }
    const tab = event.target.closest("[data-status-tab], .strip [data-tab]");
    if (tab) {
      event.preventDefault();
      const next = tab.dataset.statusTab !== undefined ? tab.dataset.statusTab : tab.dataset.tab;
      chooseStatus(next === status && tab.dataset.tab ? "" : next);
      return;
    }
    const mode = event.target.closest("[data-submit-mode]");
    if (mode) {
      $$("[data-submit-mode]").forEach((t) => t.setAttribute("aria-selected", String(t === mode)));
      $$("[data-mode-panel]").forEach((p) => { p.hidden = p.dataset.modePanel !== mode.dataset.submitMode; });
    }
  });

  function onSubmit(id, handler) {
    const form = $(id);
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("button[type=submit]", form);
      button.disabled = true;
      formError(form, "");
      try {
        await handler(form);
      } catch (err) {
        formError(form, err.message);
      } finally {
        button.disabled = form.id === "delete-form" && $("#dq-confirm").value !== page.queue;
      }
    });
  }

  onSubmit("#key-form", async (form) => {
    const key = $("#key-input").value.trim();
    const res = await fetch("/dashboard/key", { headers: { "X-API-Key": key }, cache: "no-store" });
    const check = await res.json();
    if (!check.valid) throw new Error("This key is not accepted by the server.");
    setKey(key);
    form.closest("dialog").close();
    toast("Key saved in this browser.");
    openStream();
  });

  // The settings both the new-queue and the settings form hold (the queue_settings macro of the templates).
  function queueSettings(f) {
    return {
      description: f.description.value,
      max_retries: Number(f.max_retries.value),
      claim_timeout: Number(f.claim_timeout.value),
      retry_delay: Number(f.retry_delay.value),
      retry_delay_max: Number(f.retry_delay_max.value),
      retention: Number(f.retention.value),
      dedupe: f.dedupe.checked,
    };
  }

  onSubmit("#create-form", async (form) => {
    const f = form.elements;
    const body = { name: f.name.value.trim(), ...queueSettings(f) };
    const info = await api("POST", "/api/v1/queues", body);
    form.closest("dialog").close();
    form.reset();
    toast(`Queue “${info.name}” created.`);
  });

  function parsePayload(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Error(`The payload is not valid JSON: ${err.message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("The payload must be a JSON object.");
    return value;
  }

  // One line of a JSONL upload: a bare payload, or {payload, priority?, delay?, run_at?} as the API takes it.
  function jobFromLine(line, number) {
    let value;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`Line ${number} is not valid JSON: ${err.message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`Line ${number} is not a JSON object.`);
    const keys = Object.keys(value);
    const wrapped = "payload" in value && keys.every((k) => ["payload", "priority", "delay", "run_at"].includes(k));
    return wrapped ? value : { payload: value };
  }

  async function uploadFile(form, file) {
    const lines = (await file.text()).split(/\r?\n/).map((l, i) => [l.trim(), i + 1]).filter(([l]) => l);
    if (!lines.length) throw new Error("The file holds no jobs.");
    const jobs = lines.map(([l, n]) => jobFromLine(l, n));
    const progress = $("#sj-progress");
    const label = $("#sj-progress-text");
    progress.hidden = false;
    progress.max = jobs.length;
    progress.value = 0;
    let sent = 0;
    let skipped = 0;
    while (sent < jobs.length) {
      const batch = [];
      let bytes = 0;
      while (sent + batch.length < jobs.length && batch.length < MAX_BATCH_JOBS) {
        const size = JSON.stringify(jobs[sent + batch.length]).length;
        if (batch.length && bytes + size > MAX_BATCH_BYTES) break;
        batch.push(jobs[sent + batch.length]);
        bytes += size;
      }
      try {
        const res = await api("POST", `${queuePath()}/jobs`, { jobs: batch });
        skipped += res.skipped;
      } catch (err) {
        throw new Error(`Stopped after ${nf.format(sent)} of ${nf.format(jobs.length)} jobs (lines from ${lines[sent][1]} on were not submitted): ${err.message}`);
      }
      sent += batch.length;
      progress.value = sent;
      setText(label, `${nf.format(sent)} / ${nf.format(jobs.length)} jobs submitted`);
    }
    toast(`Submitted ${nf.format(jobs.length - skipped)} jobs${skipped ? ` (${nf.format(skipped)} duplicates skipped)` : ""}.`);
  }

  onSubmit("#submit-form", async (form) => {
    const mode = $("[data-submit-mode][aria-selected=true]", form).dataset.submitMode;
    if (mode === "file") {
      const file = form.elements.file.files[0];
      if (!file) throw new Error("Choose a file first.");
      await uploadFile(form, file);
      return;
    }
    const body = { payload: parsePayload(form.elements.payload.value), priority: Number(form.elements.priority.value || 0) };
    const delay = Number(form.elements.delay.value || 0);
    if (delay > 0) body.delay = delay;
    const res = await api("POST", `${queuePath()}/jobs`, body);
    const job = res.jobs[0];
    toast(res.skipped ? "A job with this payload exists already: skipped." : `Submitted job ${job.id.slice(0, 8)}… (${job.status}).`);
  });

  onSubmit("#delete-form", async () => {
    if ($("#dq-confirm").value !== page.queue) throw new Error(`Type ${page.queue} to confirm.`);
    await api("DELETE", queuePath());
    if (stream) stream.abort();
    location.assign("/");
  });

  onSubmit("#settings-form", async (form) => {
    const f = form.elements;
    const chosen = {
      ...queueSettings(f),
      concurrency: Number(f.concurrency.value),
      key_concurrency: Number(f.key_concurrency.value),
      rate_limit: f.rate_on.checked ? { max: Number(f.rate_max.value), per_ms: Number(f.rate_per_ms.value) } : null,
      events: f.events.checked,
      events_max: Number(f.events_max.value),
    };
    // Only what was changed here is sent, so a change made elsewhere meanwhile is not undone.
    const changes = {};
    for (const [name, value] of Object.entries(chosen)) {
      if (JSON.stringify(value) !== JSON.stringify(settingsBase[name])) changes[name] = value;
    }
    if (Object.keys(changes).length) await api("PATCH", queuePath(), changes);
    form.closest("dialog").close();
    toast(Object.keys(changes).length ? "Settings saved." : "Nothing changed.");
  });

  onSubmit("#schedule-form", async (form) => {
    const f = form.elements;
    const body = { name: f.name.value.trim(), payload: parsePayload(f.payload.value) };
    if (f.kind.value === "cron") {
      if (!f.cron.value.trim()) throw new Error("Give a cron expression, e.g. 0 3 * * * for 03:00 every day.");
      body.cron = f.cron.value.trim();
      body.timezone = f.timezone.value.trim() || "UTC";
    } else {
      body.every = Number(f.every.value);
    }
    const made = await api("POST", `${queuePath()}/schedules`, body);
    form.closest("dialog").close();
    form.reset();
    showKindPanels();
    toast(`Schedule ${made.name} created: next run ${fmtTime(made.next_run_at)}.`);
  });

  onSubmit("#confirm-form", async (form) => {
    const what = confirming;
    if (!what) return;
    await what.run();
    confirming = null;
    form.closest("dialog").close();
  });

  const rateOn = $("#qs-rate-on");
  if (rateOn) rateOn.addEventListener("change", showRateFields);
  const eventsOn = $("#qs-events");
  if (eventsOn) eventsOn.addEventListener("change", showEventFields);
  const scheduleForm = $("#schedule-form");
  if (scheduleForm) scheduleForm.addEventListener("change", (event) => { if (event.target.name === "kind") showKindPanels(); });

  if (searchInput) searchInput.addEventListener("input", onSearchInput);
  const jobsTable = $("#jobs-table");
  if (jobsTable) jobsTable.addEventListener("change", onPick);

  const confirmInput = $("#dq-confirm");
  if (confirmInput) {
    confirmInput.addEventListener("input", () => { $("#delete-confirm").disabled = confirmInput.value !== page.queue; });
  }

  // -- start -----------------------------------------------------------------------------------------------

  showKeyState();
  const initial = $("#initial-snapshot");
  if (initial) {
    const snapshot = JSON.parse(initial.textContent);
    render(snapshot);
  }
  setInterval(() => {
    $$("[data-since]").forEach(refreshAge);
    $$("[data-until]").forEach(refreshUntil);
  }, 1000);
  // Charts are drawn to their container's size: draw them again when it changes.
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => lastSnapshot && render(lastSnapshot), 150);
  });
  if (page.view === "missing") {
    setLive("gone", "not found");
  } else if (page.readAuth === "1" && !getKey()) {
    setLive("locked");
    openKeyDialog();
  } else {
    openStream();
  }
})();
