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
           NOQUEUE, NOJOB, NOTCLAIMED, LEASE, STATE.
  Fields   of records are read and written by name: read(key, FIELDS) gives a table keyed by field name.
  Cost     each command run from Lua costs about as much as the Lua around it, so the functions that move
           many jobs (submit, claim, ack) do per job only what is keyed by the job (its hash, its stream
           entry) and update the shared keys (status indexes, leases, expiry, counters) once per call with
           every id in one command.

Keys of a queue (P = "starq:{<queue>}:"):
  P.."meta"          hash   settings, paused flag, created_at, deleting flag, prios (priorities ever used)
  P.."s:<0-9>"       stream one per priority; holds exactly the pending jobs (entry field "id")
  P.."job:<id>"      hash   the job record; its field "hist" holds the job's status history, newest last, one
                            JSON object a line, capped at HISTORY_MAX entries ("hn" counts them; "0" means
                            the record's own fields stand for its history, see history()). Keeping it in the
                            record costs no command of its own: every transition writes the record.
  P.."idx:<status>"  zset   job ids by status, all scores 0, ordered by id (ids sort by creation time)
  P.."sched"         zset   scheduled job ids by due time
  P.."leases"        zset   claimed job ids by lease expiry
  P.."expiry"        zset   finished job ids by the time their record is removed
  P.."dedupe"        hash   canonical payload hash -> job id
  P.."tput"          hash   ring of 5-second buckets of completed/failed counts (one hour)
  P.."workers"       hash   worker name -> last claim time
  P.."inhand"        hash   worker name -> jobs it holds now
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

-- Appends a job to the stream of its priority: from here on it can be claimed. Returns the entry id.
local function add_to_stream(q, id, priority)
  return redis.call('XADD', q.P .. 's:' .. priority, '*', 'id', id)
end

local function drop_dedupe(q, hash, id)
  if hash and hash ~= '' and redis.call('HGET', q.P .. 'dedupe', hash) == id then
    redis.call('HDEL', q.P .. 'dedupe', hash)
  end
end

-- Adds n completed ('c') or failed ('f') outcomes to the current 5-second bucket.
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

-- The shared-key side of ending claimed jobs for good (completed or dead): off the lease zset, into the
-- status index, and onto the expiry zset that removes their records once the retention passes.
local function finish_many(q, ids, job_status, now)
  if #ids == 0 then return end
  call_many('ZREM', q.P .. 'leases', {}, ids)
  move_index_many(q.P, ids, 'claimed', job_status)
  call_many('ZADD', q.P .. 'expiry', {}, scored(ids, now + q.retention_ms))
end

-- The job fields that outcomes (fail, extend, release, lease expiry) read, history included.
local OUTCOME = {'status', 'lease', 'retries', 'priority', 'worker', 'done_lease', 'done_as', 'hist', 'hn', 'dedupe'}

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
    return redis.error_reply('NOTCLAIMED job ' .. id .. ' is ' .. f.status .. ', not claimed')
  end
  if lease ~= '' and lease ~= f.lease then
    return redis.error_reply('LEASE the lease ' .. lease .. ' on job ' .. id .. ' is no longer current')
  end
  return nil
end

local function publish_ready(q)
  redis.call('PUBLISH', 'starq:ready', string.match(q.meta, '{(.*)}'))
end

-- Moves due scheduled jobs to their streams. Returns how many moved.
local function promote_due(q, now, limit)
  local due = redis.call('ZRANGE', q.P .. 'sched', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  for _, id in ipairs(due) do
    local jkey = q.P .. 'job:' .. id
    local entry = add_to_stream(q, id, redis.call('HGET', jkey, 'priority'))
    redis.call('HSET', jkey, 'status', 'pending', 'entry', entry, 'run_at', '')
  end
  call_many('ZREM', q.P .. 'sched', {}, due)
  move_index_many(q.P, due, 'scheduled', 'pending')
  return #due
end

-- Puts one job that just left the claimed state back in line, now or after a backoff, writing fields (the
-- caller's changes to the record) in the same HSET. Returns the job's new status.
local function requeue(q, id, jkey, priority, delay_ms, now, fields)
  redis.call('ZREM', q.P .. 'leases', id)
  if delay_ms > 0 then
    local due = now + delay_ms
    redis.call('ZADD', q.P .. 'sched', due, id)
    hset(jkey, {'status', 'scheduled', 'entry', '', 'run_at', due, 'lease_exp', ''}, fields)
    move_index_many(q.P, {id}, 'claimed', 'scheduled')
    return 'scheduled'
  end
  local entry = add_to_stream(q, id, priority)
  hset(jkey, {'status', 'pending', 'entry', entry, 'run_at', '', 'lease_exp', ''}, fields)
  move_index_many(q.P, {id}, 'claimed', 'pending')
  return 'pending'
end

-- The outcomes of many claimed jobs, as one call. done collects what is updated once per call: ids
-- completed and dead, jobs let go per worker, and how many completed and failed attempts to count.
local function new_done(now)
  return {completed = {}, dead = {}, hands = {}, c = 0, f = 0, now_s = tostring(now)}
end

local function let_go(done, worker)
  if worker and worker ~= '' then done.hands[worker] = (done.hands[worker] or 0) + 1 end
end

-- Updates the shared keys for every outcome of one call.
local function settle(q, done, now)
  finish_many(q, done.completed, 'completed', now)
  finish_many(q, done.dead, 'failed', now)
  release_hands(q, done.hands)
  count_outcome(q, now, 'c', done.c)
  count_outcome(q, now, 'f', done.f)
  if done.requeued then publish_ready(q) end
end
