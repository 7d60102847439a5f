--[[
Starq's queue engine: every state transition of a job is one Redis function, run atomically by Redis.

The library is this file followed by the others of this folder, each in a block of its own (see library.py,
which also writes the constants at the top from the Python declarations: STATUSES, RECORD). This file holds
what they share.

Conventions shared by every function:
  KEYS[1]  the queue's meta hash, "starq:{<queue>}:meta". Every other key the function touches is derived
           from that key's prefix, so all of a queue's keys share one hash tag and one cluster slot. Job
           hashes are named after job ids that only the functions discover (a claim reads them from a
           stream), which is why the siblings are derived here rather than passed in KEYS.
  Time     comes from the Redis server (TIME), in milliseconds, so every API process agrees on "now".
  Errors   are returned as Redis errors whose first word is a stable code the engine maps to an exception:
           NOQUEUE, NOJOB, NOTCLAIMED, LEASE, CANCELLED, STATE, EXISTS, NOSCHEDULE.
  Fields   of records are read and written by name: read(key, FIELDS) gives a table keyed by field name.
  Cost     each command run from Lua costs about as much as the Lua around it, so the functions that move
           many jobs (submit, claim, ack) do per job only what is keyed by the job (its hash, its stream
           entry) and update the shared keys (status indexes, leases, expiry, counters) once per call with
           every id in one command. A feature a job or queue does not use costs it nothing: its fields are
           absent and the code that serves it is skipped.

Keys of a queue (P = "starq:{<queue>}:"):
  P.."meta"          hash   settings, paused flag, created_at, deleting flag, prios (priorities ever used),
                            held_by_key (jobs waiting in their keys' lines)
  P.."s:<0-9>"       stream one per priority; holds exactly the claimable pending jobs (entry field "id")
  P.."job:<id>"      hash   the job record (RECORD's fields and the bookkeeping below); its field "hist" holds
                            the job's status history, newest last, one JSON object a line, capped at HISTORY_MAX
                            entries ("hn" counts them; "0" means the record's own fields stand for its history,
                            see history()). Keeping it in the record costs no command of its own.
  P.."idx:<status>"  zset   job ids by status, all scores 0, ordered by id (ids sort by creation time)
  P.."tag:<tag>"     zset   job ids with that tag, ordered by id like idx:<status>
  P.."sched"         zset   scheduled job ids by due time
  P.."leases"        zset   claimed job ids by lease expiry
  P.."expiry"        zset   finished job ids by the time their record is removed
  P.."uniq"          hash   unique key -> the job holding it (a job's unique_key, or "d:<payload hash>")
  P.."uniq_until"    zset   unique key -> until when it is held (ms; +inf: until that job finishes)
  P.."kact"          hash   job key -> its active jobs (in a stream, claimed, or waiting out a retry)
  P.."kq:<key>"      list   jobs of that key waiting for a free slot (key_concurrency), in submission order
  P.."kwait"         set    job keys whose line (kq:<key>) is not empty
  P.."rl"            string the current rate-limit window's hand-outs (expires when the window ends)
  P.."crons"         zset   schedule names (score 0, by name); P.."cron:<name>" hash: the schedule
  P.."cron_due"      zset   active schedule names by next run (ms)
  P.."tput"          hash   ring of 5-second buckets of completed/failed counts (one hour)
  P.."workers"       hash   worker name -> last claim time
  P.."inhand"        hash   worker name -> jobs it holds now

Record fields besides RECORD's: hist, hn (history); entry (its stream entry while claimable); done_lease,
done_as (the lease and the report that finished it, so a repeat is answered the same); dk (its payload hash,
on a dedupe queue); dl (the deadline of the current attempt, with a timeout); act ("1" while the job holds a
slot of its key); kw ("1" while it waits in its key's line).
]]

local GROUP = 'starq'
local BUCKET_MS = 5000
local BUCKETS = 720
local HISTORY_MAX = 50
-- Arguments per command when one command carries many ids: Lua's unpack() fails past ~8,000 values.
local CHUNK = 4000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function prefix_of(meta_key)
  return string.sub(meta_key, 1, #meta_key - 4)
end

-- The named fields of a hash as a table keyed by name (a missing field reads as false).
local function read(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do out[name] = values[i] end
  return out
end

-- A job record as the engine reads it: the values of RECORD's fields, in that order.
local function record_values(jkey)
  return redis.call('HMGET', jkey, unpack(RECORD))
end

-- The values of RECORD's fields from a table of them by name.
local function values_of(rec)
  local out = {}
  for i, name in ipairs(RECORD) do out[i] = rec[name] end
  return out
end

local function empty(value)
  return not value or value == ''
end

-- Runs cmd on key with a fixed head of arguments followed by many items, CHUNK items per command.
-- Items come in whole groups (score/member pairs), so CHUNK is even.
local function call_many(cmd, key, head, items)
  local n = #items
  for i = 1, n, CHUNK do
    local last = math.min(i + CHUNK - 1, n)
    if #head == 0 then
      redis.call(cmd, key, unpack(items, i, last))
    else
      local args = {unpack(head)}
      for j = i, last do args[#args + 1] = items[j] end
      redis.call(cmd, key, unpack(args))
    end
  end
end

-- Members with one score, as ZADD wants them: score, id, score, id, ... The score is made a string once
-- (Lua would format the number again for every member).
local function scored(ids, score)
  score = tostring(score)
  local out = {}
  for i, id in ipairs(ids) do
    out[2 * i - 1] = score
    out[2 * i] = id
  end
  return out
end

-- Moves many job ids from one status index to another (from = nil: they had none).
local function move_index_many(P, ids, from, to)
  if #ids == 0 then return end
  if from then
    call_many('ZREM', P .. 'idx:' .. from, {}, ids)
  end
  call_many('ZADD', P .. 'idx:' .. to, {}, scored(ids, 0))
end

-- Loads the queue's settings, failing with NOQUEUE when the queue does not exist (or is being deleted).
local function load_queue(meta_key)
  local raw = redis.call('HGETALL', meta_key)
  if #raw == 0 then
    return redis.error_reply('NOQUEUE queue not found')
  end
  local q = {}
  for i = 1, #raw, 2 do
    q[raw[i]] = raw[i + 1]
  end
  if q.deleting == '1' then
    return redis.error_reply('NOQUEUE queue not found')
  end
  q.P = prefix_of(meta_key)
  q.meta = meta_key
  q.max_retries = tonumber(q.max_retries)
  q.claim_timeout_ms = tonumber(q.claim_timeout) * 1000
  q.retry_delay_ms = tonumber(q.retry_delay) * 1000
  q.retry_delay_max_ms = tonumber(q.retry_delay_max) * 1000
  q.retention_ms = tonumber(q.retention) * 1000
  q.concurrency = tonumber(q.concurrency or '0') or 0
  q.key_concurrency = tonumber(q.key_concurrency or '0') or 0
  if not empty(q.rate_limit) and q.rate_limit ~= 'null' then
    local limit = cjson.decode(q.rate_limit)
    q.rate_max, q.rate_per_ms = tonumber(limit.max), tonumber(limit.per_ms)
  end
  return q
end

-- The events a record in implicit history mode stands for (see history): its submission, then the claim
-- and the completion it records, if any.
local IMPLICIT = {'status', 'created_at', 'claimed_at', 'lease', 'worker', 'completed_at', 'done_lease'}
local function implicit_events(jkey)
  local r = read(jkey, IMPLICIT)
  local out = {cjson.encode({at = tonumber(r.created_at), event = 'submitted'})}
  if r.status == 'claimed' or r.status == 'completed' then
    out[#out + 1] = cjson.encode({at = tonumber(r.claimed_at), event = 'claimed', lease = r.lease, worker = r.worker})
  end
  if r.status == 'completed' then
    out[#out + 1] = cjson.encode({at = tonumber(r.completed_at), event = 'completed', lease = r.done_lease})
  end
  return out
end

-- The record fields that append one event to a job's history, to add to the HSET of the transition (which
-- must come after this call: an implicit history is read from the record as it was). hist and hn are the
-- history read with the record (false when it has none yet). Fields are event-specific (lease, worker,
-- error, status, run_at, until_ms).
--
-- Most jobs are submitted, claimed once and completed, and every event of that path is already in the
-- record (created_at; claimed_at, lease, worker; completed_at, done_lease). Such a record keeps hn = '0'
-- and no text ("implicit" mode): submit, claim and complete write no history at all while it is '0'. Any
-- other event first writes out the events the record stood for, then appends itself.
local function history(jkey, hist, hn, now, event, fields)
  local entry = fields or {}
  entry.at = now
  entry.event = event
  local line = cjson.encode(entry)
  local count = tonumber(hn) or 0
  if hn == '0' then
    local events = implicit_events(jkey)
    hist, count = table.concat(events, '\n'), #events
  end
  if not hist or hist == '' then
    return {'hist', line, 'hn', 1}
  end
  if count >= HISTORY_MAX then
    -- Full: the oldest event makes room (rare: only jobs retried or extended dozens of times).
    local cut = string.find(hist, '\n', 1, true)
    hist = cut and string.sub(hist, cut + 1) or ''
    count = HISTORY_MAX - 1
    if hist == '' then return {'hist', line, 'hn', 1} end
  end
  return {'hist', hist .. '\n' .. line, 'hn', count + 1}
end

-- Field/value lists joined into one, so a transition writes a record with one HSET.
local function hset_fields(...)
  local out = {}
  for _, part in ipairs({...}) do
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end

local function hset(jkey, ...)
  redis.call('HSET', jkey, unpack(hset_fields(...)))
end

local function publish_ready(q)
  redis.call('PUBLISH', 'starq:ready', string.match(q.meta, '{(.*)}'))
end

-- Appends a job to the stream of its priority: from here on it can be claimed. Returns the entry id.
local function add_to_stream(q, id, priority)
  return redis.call('XADD', q.P .. 's:' .. priority, '*', 'id', id)
end

------------------------------------------------------------------------------------------------------------
-- Unique keys: a job's unique_key, or on a dedupe queue the hash of its payload ("d:<hash>"), held until the
-- job finishes or, with unique_for, until that many seconds after it was submitted.

-- The unique key a record holds, from its fields uk and dk; nil when it holds none.
local function unique_of(f)
  if not empty(f.uk) then return f.uk end
  if not empty(f.dk) then return 'd:' .. f.dk end
  return nil
end

-- The job holding unique key uk now, or nil.
local function unique_holder(q, uk, now)
  local held = redis.call('ZSCORE', q.P .. 'uniq_until', uk)
  if not held or (held ~= 'inf' and tonumber(held) <= now) then return nil end
  return redis.call('HGET', q.P .. 'uniq', uk)
end

local function hold_unique(q, uk, id, until_ms)
  redis.call('HSET', q.P .. 'uniq', uk, id)
  redis.call('ZADD', q.P .. 'uniq_until', until_ms, uk)
end

-- A job that finished as status lets go of a unique key it holds until it finishes. A payload's dedupe key
-- stays with a completed job until its record goes (the queue still knows that payload): only a dead or
-- cancelled job lets it go. A key held for a time (unique_for) stays until that time.
local function free_unique(q, f, id, status)
  local uk = unique_of(f)
  if not uk or (status == 'completed' and empty(f.uk)) then return end
  if redis.call('HGET', q.P .. 'uniq', uk) == id and redis.call('ZSCORE', q.P .. 'uniq_until', uk) == 'inf' then
    redis.call('HDEL', q.P .. 'uniq', uk)
    redis.call('ZREM', q.P .. 'uniq_until', uk)
  end
end

------------------------------------------------------------------------------------------------------------
-- Job keys (key_concurrency): a job with a key enters its stream only while its key has fewer than
-- key_concurrency active jobs; otherwise it waits in its key's line, in submission order, and enters when an
-- active job of its key finishes. Other keys and keyless jobs flow past it: nothing blocks the streams' heads.

-- Makes a job claimable: into its stream, unless its key is at its limit (then into its key's line).
-- Returns the record fields to write ('entry' and 'act', or 'kw').
local function enqueue(q, id, priority, key)
  if empty(key) then
    return {'entry', add_to_stream(q, id, priority)}
  end
  local kact = q.P .. 'kact'
  if q.key_concurrency > 0 and tonumber(redis.call('HGET', kact, key) or '0') >= q.key_concurrency then
    redis.call('RPUSH', q.P .. 'kq:' .. key, id)
    redis.call('SADD', q.P .. 'kwait', key)
    redis.call('HINCRBY', q.meta, 'held_by_key', 1)
    return {'entry', '', 'kw', '1'}
  end
  redis.call('HINCRBY', kact, key, 1)
  return {'entry', add_to_stream(q, id, priority), 'act', '1', 'kw', ''}
end

-- Lets the next waiting jobs of key in while it is under its limit. Returns how many entered their stream.
local function admit_key(q, key)
  local line, kact = q.P .. 'kq:' .. key, q.P .. 'kact'
  local admitted = 0
  while q.key_concurrency == 0 or tonumber(redis.call('HGET', kact, key) or '0') < q.key_concurrency do
    local id = redis.call('LPOP', line)
    if not id then break end
    redis.call('HINCRBY', q.meta, 'held_by_key', -1)
    local jkey = q.P .. 'job:' .. id
    redis.call('HINCRBY', kact, key, 1)
    redis.call('HSET', jkey, 'entry', add_to_stream(q, id, redis.call('HGET', jkey, 'priority')), 'act', '1',
      'kw', '')
    admitted = admitted + 1
  end
  if redis.call('LLEN', line) == 0 then redis.call('SREM', q.P .. 'kwait', key) end
  return admitted
end

-- An active job of key is done (finished, or removed): its slot goes to the next job of its line.
-- Returns how many jobs entered their stream.
local function leave_key(q, key)
  local left = redis.call('HINCRBY', q.P .. 'kact', key, -1)
  if left <= 0 then redis.call('HDEL', q.P .. 'kact', key) end
  if redis.call('SISMEMBER', q.P .. 'kwait', key) == 1 then return admit_key(q, key) end
  return 0
end

-- Takes a job out of line: off its stream, its key's line or the schedule. f: its status, priority, entry,
-- key, act, kw.
local function unqueue(q, id, f)
  if f.status == 'pending' then
    if not empty(f.entry) then
      redis.call('XDEL', q.P .. 's:' .. f.priority, f.entry)
    elseif f.kw == '1' then
      redis.call('LREM', q.P .. 'kq:' .. f.key, 1, id)
      redis.call('HINCRBY', q.meta, 'held_by_key', -1)
      if redis.call('LLEN', q.P .. 'kq:' .. f.key) == 0 then redis.call('SREM', q.P .. 'kwait', f.key) end
    end
  elseif f.status == 'scheduled' then
    redis.call('ZREM', q.P .. 'sched', id)
  end
end

------------------------------------------------------------------------------------------------------------

local function count_outcome(q, now, kind, n)
  if n <= 0 then return end
  local bucket = math.floor(now / BUCKET_MS)
  local slot = bucket % BUCKETS
  local key = q.P .. 'tput'
  if redis.call('HGET', key, 't:' .. slot) ~= tostring(bucket) then
    redis.call('HSET', key, 't:' .. slot, bucket, 'c:' .. slot, 0, 'f:' .. slot, 0)
  end
  redis.call('HINCRBY', key, kind .. ':' .. slot, n)
end

-- Workers' jobs in hand go down by the counts in hands (worker name -> jobs let go).
local function release_hands(q, hands)
  for worker, n in pairs(hands) do
    if worker ~= '' then
      if redis.call('HINCRBY', q.P .. 'inhand', worker, -n) <= 0 then
        redis.call('HDEL', q.P .. 'inhand', worker)
      end
    end
  end
end

-- The job fields that outcomes (fail, extend, release, lease expiry, cancel) read, history included.
local OUTCOME = {'status', 'lease', 'retries', 'priority', 'worker', 'done_lease', 'done_as', 'hist', 'hn', 'key',
  'act', 'uk', 'dk', 'mr', 'to', 'dl', 'entry', 'kw'}

-- Checks that the caller holds the job's current lease (f: the job's OUTCOME fields, or at least status,
-- lease, retries, done_lease and done_as). Returns nil when it does, or a reply to send back: the repeat of
-- an outcome already recorded under the same lease is answered as a success, not an error.
local function check_lease(id, f, lease, op)
  if not f.status then
    return redis.error_reply('NOJOB job not found')
  end
  if f.status ~= 'claimed' then
    if lease ~= '' and f.done_lease == lease and f.done_as == op then
      return {'repeat', f.status, tonumber(f.retries)}
    end
    if f.status == 'cancelled' then
      return redis.error_reply('CANCELLED job ' .. id .. ' was cancelled; stop working on it')
    end
    return redis.error_reply('NOTCLAIMED job ' .. id .. ' is ' .. f.status .. ', not claimed')
  end
  if lease ~= '' and lease ~= f.lease then
    return redis.error_reply('LEASE the lease ' .. lease .. ' on job ' .. id .. ' is no longer current')
  end
  return nil
end

-- Moves due scheduled jobs to their streams (or their keys' lines). Returns how many moved.
local function promote_due(q, now, limit)
  local due = redis.call('ZRANGE', q.P .. 'sched', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  for _, id in ipairs(due) do
    local jkey = q.P .. 'job:' .. id
    local f = read(jkey, {'priority', 'key', 'act'})
    local fields
    if f.act == '1' then
      fields = {'entry', add_to_stream(q, id, f.priority)} -- a retry keeps the slot its key gave it
    else
      fields = enqueue(q, id, f.priority, f.key)
    end
    hset(jkey, {'status', 'pending', 'run_at', ''}, fields)
  end
  call_many('ZREM', q.P .. 'sched', {}, due)
  move_index_many(q.P, due, 'scheduled', 'pending')
  return #due
end

-- Puts one job that just left the claimed state back in line, now or after a delay, writing fields (the
-- caller's changes to the record) in the same HSET. An active job of a key keeps its key's slot (it stays
-- first of its key). Returns the job's new status.
local function requeue(q, id, jkey, priority, delay_ms, now, fields)
  redis.call('ZREM', q.P .. 'leases', id)
  if delay_ms > 0 then
    local due = now + delay_ms
    redis.call('ZADD', q.P .. 'sched', due, id)
    hset(jkey, {'status', 'scheduled', 'entry', '', 'run_at', due, 'lease_exp', '', 'dl', ''}, fields)
    move_index_many(q.P, {id}, 'claimed', 'scheduled')
    return 'scheduled'
  end
  local entry = add_to_stream(q, id, priority)
  hset(jkey, {'status', 'pending', 'entry', entry, 'run_at', '', 'lease_exp', '', 'dl', ''}, fields)
  move_index_many(q.P, {id}, 'claimed', 'pending')
  return 'pending'
end

-- The outcomes of many jobs, as one call. done collects what is updated once per call: ids completed, dead
-- and cancelled, jobs let go per worker, how many completed and failed attempts to count, and whether a
-- waiting claim may now find work (something became claimable, or a concurrency slot came free).
local function new_done(now)
  return {completed = {}, dead = {}, cancelled = {}, hands = {}, c = 0, f = 0, now_s = tostring(now)}
end

local function let_go(done, worker)
  if worker and worker ~= '' then done.hands[worker] = (done.hands[worker] or 0) + 1 end
end

-- What every job that finishes as status (completed, failed or cancelled) lets go of: its unique key and its
-- key's slot.
local function finish_job(q, f, id, status, done)
  free_unique(q, f, id, status)
  if f.act == '1' then
    redis.call('HSET', q.P .. 'job:' .. id, 'act', '')
    if leave_key(q, f.key) > 0 then done.requeued = true end
  end
end

-- Updates the shared keys for every outcome of one call. Finished jobs leave the lease zset (those that were
-- claimed) and their status index, and go onto the expiry zset that removes their records once the
-- retention passes.
local function settle(q, done, now)
  local until_ms = now + q.retention_ms
  for status, ids in pairs({completed = done.completed, failed = done.dead}) do
    if #ids > 0 then
      call_many('ZREM', q.P .. 'leases', {}, ids)
      move_index_many(q.P, ids, 'claimed', status)
      call_many('ZADD', q.P .. 'expiry', {}, scored(ids, until_ms))
    end
  end
  release_hands(q, done.hands)
  count_outcome(q, now, 'c', done.c)
  count_outcome(q, now, 'f', done.f)
  -- Claims held back by the queue's concurrency may go on now that claimed jobs are done.
  local freed = q.concurrency > 0 and (#done.completed + #done.dead + #done.cancelled) > 0
  if done.requeued or freed then publish_ready(q) end
end

-- Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries spread out.
local function backoff_ms(q, attempt, jitter)
  if q.retry_delay_ms <= 0 then return 0 end
  local d = math.min(q.retry_delay_ms * 2 ^ (attempt - 1), q.retry_delay_max_ms)
  return math.floor(d / 2 + d / 2 * jitter)
end

-- The most attempts a job gets after its first: its own max_retries, else its queue's.
local function max_retries_of(q, f)
  return empty(f.mr) and q.max_retries or tonumber(f.mr)
end

-- A failed attempt (reported, or found by the maintenance loop: an expired lease or a timeout) of a claimed
-- job f: retried after a backoff (or after delay_ms, when given) while attempts remain and retry is asked,
-- else dead-lettered. outcome: the record fields to write either way; event: the history entry's name and
-- fields. Returns the job's new status and its retries.
local function failed_attempt(q, id, jkey, f, retry, jitter, now, done, outcome, event, fields, delay_ms)
  local retries = tonumber(f.retries)
  done.f = done.f + 1
  let_go(done, f.worker)
  if retry and retries < max_retries_of(q, f) then
    retries = retries + 1
    local delay = delay_ms or backoff_ms(q, retries, jitter)
    local status = delay > 0 and 'scheduled' or 'pending'
    outcome[#outcome + 1] = 'retries'
    outcome[#outcome + 1] = retries
    fields.status = status
    requeue(q, id, jkey, f.priority, delay, now, hset_fields(outcome, history(jkey, f.hist, f.hn, now, event, fields)))
    done.requeued = done.requeued or status == 'pending'
    return status, retries
  end
  fields.status = 'failed'
  hset(jkey, outcome, {'status', 'failed', 'completed_at', now, 'lease_exp', '', 'dl', ''},
    history(jkey, f.hist, f.hn, now, event, fields))
  done.dead[#done.dead + 1] = id
  finish_job(q, f, id, 'failed', done)
  return 'failed', retries
end

------------------------------------------------------------------------------------------------------------
-- Submitting one job (submit, and a schedule's run). opts: the job's options as the engine sends them (a
-- table, or nil): key, uk (unique key), uf (unique for, s), to (timeout, s), mr (max retries), tags (a list),
-- sch (the schedule that made it). Returns {id, status, created_at, skipped (0/1)} and adds the job to the
-- lists of new ids by status in added.

local function submit_one(q, now, id, payload, priority, due, hash, opts, added)
  local jkey = q.P .. 'job:' .. id
  if redis.call('EXISTS', jkey) == 1 then
    local f = read(jkey, {'status', 'created_at'})
    return {id, f.status, f.created_at, 1}
  end
  local o = opts or {}
  local dk = (q.dedupe == '1' and hash ~= '') and hash or nil
  local uk = o.uk or (dk and 'd:' .. dk) or nil
  if uk then
    local holder = unique_holder(q, uk, now)
    if holder then
      local f = read(q.P .. 'job:' .. holder, {'status', 'created_at'})
      if f.status then return {holder, f.status, f.created_at, 1} end
    end
    hold_unique(q, uk, id, o.uf and (now + tonumber(o.uf) * 1000) or 'inf')
  end
  local fields = {'id', id, 'payload', payload, 'priority', priority, 'retries', '0', 'created_at', tostring(now)}
  if opts then
    for _, name in ipairs({'key', 'uk', 'uf', 'to', 'mr', 'sch'}) do
      if o[name] ~= nil then
        fields[#fields + 1] = name
        fields[#fields + 1] = o[name]
      end
    end
    if o.tags then
      fields[#fields + 1] = 'tags'
      fields[#fields + 1] = cjson.encode(o.tags)
      for _, tag in ipairs(o.tags) do redis.call('ZADD', q.P .. 'tag:' .. tag, 0, id) end
    end
  end
  if dk then
    fields[#fields + 1] = 'dk'
    fields[#fields + 1] = dk
  end
  -- The priorities a queue's jobs have had: claims read only those streams.
  if not string.find(added.prios, priority, 1, true) then added.prios = added.prios .. priority end
  if due > now then
    redis.call('ZADD', q.P .. 'sched', due, id)
    hset(jkey, fields, {'status', 'scheduled', 'run_at', due},
      history(jkey, false, nil, now, 'submitted', {run_at = due}))
    added.scheduled[#added.scheduled + 1] = id
    return {id, 'scheduled', now, 0}
  end
  hset(jkey, fields, {'status', 'pending', 'hn', '0'}, enqueue(q, id, priority, o.key))
  added.pending[#added.pending + 1] = id
  return {id, 'pending', now, 0}
end

local function new_added(q)
  return {pending = {}, scheduled = {}, prios = q.prios}
end

-- The shared-key side of submit_one for a whole call.
local function settle_added(q, added)
  if added.prios ~= q.prios then redis.call('HSET', q.meta, 'prios', added.prios) end
  move_index_many(q.P, added.pending, nil, 'pending')
  move_index_many(q.P, added.scheduled, nil, 'scheduled')
  if #added.pending > 0 then publish_ready(q) end
end

------------------------------------------------------------------------------------------------------------
-- Removing a job for good (retention, purge, bulk delete), with every trace of it: its line position, lease,
-- key slot, unique key, tags, indexes. f: the job's OUTCOME fields and its tags. Does not touch idx:<status>
-- or expiry (the caller removes many ids from those at once).

local function forget_job(q, id, f, hands)
  unqueue(q, id, f)
  if f.status == 'claimed' then
    redis.call('ZREM', q.P .. 'leases', id)
    if hands and not empty(f.worker) then hands[f.worker] = (hands[f.worker] or 0) + 1 end
  end
  local uk = unique_of(f)
  if uk and redis.call('HGET', q.P .. 'uniq', uk) == id then
    redis.call('HDEL', q.P .. 'uniq', uk)
    redis.call('ZREM', q.P .. 'uniq_until', uk)
  end
  if f.act == '1' then leave_key(q, f.key) end
  if not empty(f.tags) then
    for _, tag in ipairs(cjson.decode(f.tags)) do redis.call('ZREM', q.P .. 'tag:' .. tag, id) end
  end
  redis.call('DEL', q.P .. 'job:' .. id)
end

-- OUTCOME's fields and the tags: what forget_job reads.
local FORGET = {'tags'}
for i = 1, #OUTCOME do FORGET[#FORGET + 1] = OUTCOME[i] end
