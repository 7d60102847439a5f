// A Starq worker in Node.js 20 with nothing but the built-in fetch: no npm packages.
//
//   STARQ_QUEUE=emails node worker.mjs
//
// It claims jobs with a long-poll, runs them (a batch at a time, concurrently), heart-beats each job's lease
// while it runs, and reports every outcome quoting the lease. The rules it follows, for any language:
// docs/worker-protocol.md. To port it, read it top to bottom: config, HTTP, the work, one job, the loop.

import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

// --- Configuration, from the environment ------------------------------------------------------------------
const STARQ_URL = process.env.STARQ_URL || "http://127.0.0.1:8000";
const API_KEY = process.env.STARQ_API_KEY || "dev-key";
const QUEUE = process.env.STARQ_QUEUE;
const MAX_JOBS = process.env.STARQ_MAX_JOBS ? Number(process.env.STARQ_MAX_JOBS) : Infinity; // unset: forever
const CONCURRENCY = 4; // jobs claimed (and run) at once: claim only as many as you can start now
const WORKER = `node-${hostname()}-${process.pid}`; // shown in the dashboard and on each job

if (!QUEUE) {
  console.error("STARQ_QUEUE is not set: name the queue to work on");
  process.exit(2);
}
const JOBS = `${STARQ_URL}/api/v1/queues/${encodeURIComponent(QUEUE)}/jobs`;
const log = (message) => console.error(`[${WORKER}] ${message}`);

// --- Stopping: SIGTERM or SIGINT (Ctrl-C) --------------------------------------------------------------------
// Abort the waiting claim (hanging up is enough: the server puts back any job it took for it), let the jobs in
// hand finish and be reported, then exit 0.
const stop = new AbortController();
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    log(`${signal}: finishing the jobs in hand, claiming no more`);
    stop.abort();
  });
}

// --- HTTP ------------------------------------------------------------------------------------------------------
// One request to the API. Answers {status, body}; status 0 means no answer (refused, reset, timed out, aborted).
async function call(method, path, body, { timeoutMs = 10_000, signal } = {}) {
  const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
  try {
    const response = await fetch(JOBS + path, {
      method,
      headers: { "X-API-Key": API_KEY, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.any(signals),
    });
    const text = await response.text();
    try {
      return { status: response.status, body: JSON.parse(text) };
    } catch {
      return { status: response.status, body: text }; // not JSON: a proxy's error page, say
    }
  } catch (error) {
    return { status: 0, body: String(error.cause ?? error) };
  }
}

// Pauses while the server is away: 0.5 s doubling up to 10 s, each pause drawn from the upper half of that
// (jitter, so a fleet of workers does not come back in lockstep). A stop signal cuts the pause short.
let backoffMs = 500;
async function backoff(why) {
  const pauseMs = backoffMs / 2 + (Math.random() * backoffMs) / 2;
  backoffMs = Math.min(backoffMs * 2, 10_000);
  log(`${why}; retrying in ${(pauseMs / 1000).toFixed(1)} s`);
  await sleep(pauseMs, null, { signal: stop.signal }).catch(() => {});
}

// --- The work ----------------------------------------------------------------------------------------------------
// Takes the job's payload, returns its result (any JSON value); throwing fails the job with the message.
async function work(payload) {
  if (payload.sleep_ms) await sleep(payload.sleep_ms);
  if ("fail" in payload) throw new Error(payload.fail);
  if (!Number.isInteger(payload.n)) throw new Error("the payload needs an integer n");
  return { squared: payload.n * payload.n, worker: "node" };
}

// --- One job: heart-beat while it runs, then report --------------------------------------------------------
async function runJob(job) {
  // The lease lasts lease_expires_at − claimed_at (two server times: no clock skew). Extend it every half of that.
  const leaseMs = Date.parse(job.lease_expires_at) - Date.parse(job.claimed_at);
  let running = true;
  let lost = false; // set when the server says the job is not ours any more
  let beat;
  const heartbeat = async () => {
    const r = await call("PUT", `/${job.id}/extend`, { lease_id: job.lease_id });
    if (!running) return; // the job ended while this extend was on its way
    if (r.status === 404 || r.status === 409) {
      lost = true; // expired and handed to another worker, or deleted: do not report it
      log(`job ${job.id}: lease lost (${r.status} ${r.body?.error}); its outcome will not be reported`);
      return;
    }
    if (r.status !== 200) log(`job ${job.id}: extend got ${r.status || r.body}; trying again in 1 s`);
    beat = setTimeout(heartbeat, r.status === 200 ? leaseMs / 2 : 1000);
  };
  beat = setTimeout(heartbeat, leaseMs / 2);

  let outcome, body;
  try {
    const result = await work(job.payload);
    [outcome, body] = ["complete", { lease_id: job.lease_id, result }];
  } catch (error) {
    // The error's first line is what the dashboard shows; a real worker may add error.stack after a blank line.
    [outcome, body] = ["fail", { lease_id: job.lease_id, error: error.message }];
  } finally {
    running = false;
    clearTimeout(beat);
  }
  if (!lost) await report(job, outcome, body);
}

// complete/fail. Repeating a report that quotes the lease is safe, so retry it while there is no answer or a 5xx.
async function report(job, outcome, body) {
  for (let attempt = 1; attempt <= 10; attempt++) {
    const r = await call("PUT", `/${job.id}/${outcome}`, body);
    if (r.status === 200) {
      log(`job ${job.id}: ${outcome === "complete" ? "completed" : `failed: ${body.error}`}`);
      return;
    }
    if (r.status >= 400 && r.status < 500) {
      // 409: the lease moved on to another worker (or this was reported already); 413: result too large.
      log(`job ${job.id}: ${outcome} refused: ${r.status} ${JSON.stringify(r.body)}`);
      return;
    }
    await sleep(attempt * 1000); // 1 s, 2 s, 3 s, ...
  }
  log(`job ${job.id}: gave up reporting it; its lease will expire and it will run again`);
}

// --- The loop: claim, run the batch, repeat --------------------------------------------------------------
let done = 0;
while (!stop.signal.aborted && done < MAX_JOBS) {
  const count = Math.min(CONCURRENCY, MAX_JOBS - done);
  // The long-poll: the server answers as soon as a job is ready, or with no jobs after block_ms. The HTTP
  // timeout must be longer than block_ms. A stop signal aborts the request.
  const r = await call(
    "POST",
    "/claim",
    { count, block_ms: 30_000, worker: WORKER },
    { timeoutMs: 40_000, signal: stop.signal },
  );
  if (stop.signal.aborted && r.status !== 200) break;
  if (r.status === 401) {
    log("401 unauthorized: the server refused STARQ_API_KEY; set it to one of the server's STARQ_API_KEYS");
    process.exit(1);
  }
  if (r.status !== 200) {
    // No answer, 503 (the server's store is away), 404 (no such queue yet), ...: wait and claim again.
    await backoff(`claim got ${r.status ? `${r.status} ${JSON.stringify(r.body)}` : `no answer (${r.body})`}`);
    continue;
  }
  backoffMs = 500;
  // Run the whole batch, then claim again. (A busier worker would claim again as each slot frees up.)
  await Promise.all(r.body.jobs.map(runJob));
  done += r.body.jobs.length;
}
log(`stopping after ${done} job(s)`);
process.exit(0);
