#!lua name=starq
--[[
Starq's queue engine: every state transition of a job is one function here, run atomically by Redis.

Conventions shared by every function:
  KEYS[1]  the queue's meta hash, "starq:{<queue>}:meta". Every other key the function touches is derived
           from that key's prefix, so all of a queue's keys share one hash tag and one cluster slot. Job
           hashes are named after job ids that only the scripts discover (a claim reads them from a
           stream), which is why the siblings are derived here rather than passed in KEYS.
  Time     comes from the Redis server (TIME), in milliseconds, so every API process agrees on "now".
  Errors   are returned as Redis errors whose first word is a stable code the engine maps to an exception:
           NOQUEUE, NOJOB, NOTCLAIMED, LEASE, STATE.
  Cost     each command run from Lua costs about as much as the Lua around it, so the functions that move
           many jobs (submit, claim, ack) do per job only what is keyed by the job (its hash, its stream
           entry) and update the shared keys (status indexes, leases, expiry, counters) once per call with
           every id in one command.

Keys of a queue (P = "starq:{<queue>}:"):
  P.."meta"          hash   settings, paused flag, created_at, deleting flag
  P.."s:<0-9>"       stream one per priority; holds exactly the pending jobs (entry field "id")
  P.."job:<id>"      hash   the job record; its field "hist" holds the job's status history, newest last, one
                            JSON object a line, capped at HISTORY_MAX entries ("hn" counts them; "0" means
                            the record's own fields stand for its history, see history()). Keeping it in the
                            record costs no command of its own: every transition writes the record.
  P.."hist:<id>"     list   the history of a job written by an older version (read, never written; removed
                            with the record)
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
local STATUSES = {'pending', 'scheduled', 'claimed', 'completed', 'failed', 'cancelled'}
local BUCKET_MS = 5000
local BUCKETS = 720
local HISTORY_MAX = 50
-- Arguments per command when one command carries many ids: Lua's unpack() fails past ~8,000 values.
local CHUNK = 4000

-- The fields of a job record, in the order the engine reads them (claim, get_job and list_jobs return
-- records as these values, so the engine decodes no field names).
local RECORD = {'id', 'status', 'payload', 'result', 'error', 'retries', 'priority', 'created_at', 'claimed_at',
  'completed_at', 'run_at', 'lease', 'lease_exp', 'worker'}
-- RECORD followed by the history (get_job).
local RECORD_HIST = {'id', 'status', 'payload', 'result', 'error', 'retries', 'priority', 'created_at',
  'claimed_at', 'completed_at', 'run_at', 'lease', 'lease_exp', 'worker', 'hist', 'hn'}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function prefix_of(meta_key)
  return string.sub(meta_key, 1, #meta_key - 4)
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
  q.max_retries = tonumber(q.max_retries)
  q.claim_timeout_ms = tonumber(q.claim_timeout) * 1000
  q.retry_delay_ms = tonumber(q.retry_delay) * 1000
  q.retry_delay_max_ms = tonumber(q.retry_delay_max) * 1000
  q.retention_ms = tonumber(q.retention) * 1000
  return q
end

-- The events a record in implicit history mode stands for (see history): its submission, then the claim
-- and the completion it records, if any.
local function implicit_events(jkey)
  local r = redis.call('HMGET', jkey, 'status', 'created_at', 'claimed_at', 'lease', 'worker', 'completed_at',
    'done_lease')
  local out = {cjson.encode({at = tonumber(r[2]), event = 'submitted'})}
  if r[1] == 'claimed' or r[1] == 'completed' then
    out[#out + 1] = cjson.encode({at = tonumber(r[3]), event = 'claimed', lease = r[4], worker = r[5]})
  end
  if r[1] == 'completed' then
    out[#out + 1] = cjson.encode({at = tonumber(r[6]), event = 'completed', lease = r[7]})
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

local function release_hand(q, worker)
  if worker then release_hands(q, {[worker] = 1}) end
end

-- The shared-key side of ending claimed jobs for good (completed or dead): off the lease zset, into the
-- status index, and onto the expiry zset that removes their records once the retention passes.
local function finish_many(q, ids, job_status, now)
  if #ids == 0 then return end
  call_many('ZREM', q.P .. 'leases', {}, ids)
  move_index_many(q.P, ids, 'claimed', job_status)
  call_many('ZADD', q.P .. 'expiry', {}, scored(ids, now + q.retention_ms))
end

-- The job fields outcomes need, history included.
local F_STATUS, F_LEASE, F_RETRIES, F_PRIORITY, F_WORKER, F_HIST, F_HN, F_DEDUPE = 1, 2, 3, 4, 5, 8, 9, 10
local function job_fields(jkey)
  return redis.call('HMGET', jkey, 'status', 'lease', 'retries', 'priority', 'worker', 'done_lease', 'done_as',
    'hist', 'hn', 'dedupe')
end

-- Checks that the caller holds the job's current lease. Returns nil when it does, or a reply to send back:
-- the repeat of an outcome already recorded under the same lease is answered as a success, not an error.
local function check_lease(id, f, lease, op)
  local status, current, done_lease, done_as = f[1], f[2], f[6], f[7]
  if not status then
    return redis.error_reply('NOJOB job not found')
  end
  if status ~= 'claimed' then
    if lease ~= '' and done_lease == lease and done_as == op then
      return {'repeat', status, tonumber(f[3])}
    end
    return redis.error_reply('NOTCLAIMED job ' .. id .. ' is ' .. status .. ', not claimed')
  end
  if lease ~= '' and lease ~= current then
    return redis.error_reply('LEASE the lease ' .. lease .. ' on job ' .. id .. ' is no longer current')
  end
  return nil
end

local function publish_ready(q, meta_key)
  redis.call('PUBLISH', 'starq:ready', string.match(meta_key, '{(.*)}'))
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

------------------------------------------------------------------------------------------------------------
-- create_queue: KEYS[1]=meta; ARGV = field, value, ... (the settings). Returns 1, or 0 when it exists.
local function create_queue(keys, args)
  local meta = keys[1]
  if redis.call('EXISTS', meta) == 1 then
    if redis.call('HGET', meta, 'deleting') == '1' then
      return redis.error_reply('STATE the queue is still being deleted; try again shortly')
    end
    return 0
  end
  local P = prefix_of(meta)
  for p = 0, 9 do
    redis.call('XGROUP', 'CREATE', P .. 's:' .. p, GROUP, '$', 'MKSTREAM')
  end
  -- prios: the priorities the queue's jobs have ever had (see submit), so claims skip the empty streams.
  redis.call('HSET', meta, 'created_at', now_ms(), 'paused', '0', 'prios', '', unpack(args))
  return 1
end

-- update_queue: KEYS[1]=meta; ARGV = field, value, ... Returns 1. Resuming wakes waiting claims.
local function update_queue(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  redis.call('HSET', keys[1], unpack(args))
  for i = 1, #args, 2 do
    if args[i] == 'paused' and args[i + 1] == '0' then
      publish_ready(q, keys[1])
    end
  end
  return 1
end

-- queue_info: KEYS[1]=meta. Returns the meta hash followed by count pairs (read only).
local function queue_info(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local out = redis.call('HGETALL', keys[1])
  for _, s in ipairs(STATUSES) do
    table.insert(out, 'count:' .. s)
    table.insert(out, redis.call('ZCARD', q.P .. 'idx:' .. s))
  end
  local oldest = redis.call('ZRANGE', q.P .. 'idx:pending', 0, 0)
  if oldest[1] then
    table.insert(out, 'oldest_pending')
    table.insert(out, redis.call('HGET', q.P .. 'job:' .. oldest[1], 'created_at'))
  end
  table.insert(out, 'workers')
  table.insert(out, redis.call('HLEN', q.P .. 'workers'))
  return out
end

-- submit: KEYS[1]=meta; ARGV = n, then per job: id, payload, priority, due_ms (0 = now), dedupe hash ('' = none).
-- Returns per job {id, status, created_at, skipped (0/1)}. A job id that already exists is answered with the
-- existing job (skipped), which makes a retried submit with the same ids idempotent.
local function submit(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local n = tonumber(args[1])
  local out = {}
  local pending, scheduled = {}, {}
  local dedupe_on = q.dedupe == '1'
  -- A queue created by an older version has no prios: all ten streams may hold jobs.
  local prios = q.prios or '0123456789'
  local now_s = tostring(now)
  for i = 0, n - 1 do
    local id, payload, priority, due, hash = args[2 + i * 5], args[3 + i * 5], args[4 + i * 5],
      tonumber(args[5 + i * 5]), args[6 + i * 5]
    local jkey = q.P .. 'job:' .. id
    local existing = nil
    if redis.call('EXISTS', jkey) == 1 then
      existing = id
    elseif dedupe_on and hash ~= '' then
      existing = redis.call('HGET', q.P .. 'dedupe', hash)
    end
    if existing then
      local f = redis.call('HMGET', q.P .. 'job:' .. existing, 'status', 'created_at')
      out[#out + 1] = {existing, f[1], f[2], 1}
    else
      if not dedupe_on then hash = '' end
      -- Fields still empty (claimed_at, completed_at, error, ...) are left out: a record reads them as "".
      local fields = {'id', id, 'payload', payload, 'priority', priority, 'retries', '0', 'created_at', now_s}
      if hash ~= '' then
        fields[#fields + 1] = 'dedupe'
        fields[#fields + 1] = hash
      end
      if due > now then
        redis.call('ZADD', q.P .. 'sched', due, id)
        hset(jkey, fields, {'status', 'scheduled', 'run_at', due},
          history(jkey, false, nil, now, 'submitted', {run_at = due}))
        scheduled[#scheduled + 1] = id
        out[#out + 1] = {id, 'scheduled', now, 0}
      elseif hash == '' then
        -- The usual case, spelled out: no table to build and join.
        redis.call('HSET', jkey, 'id', id, 'payload', payload, 'priority', priority, 'retries', '0', 'created_at',
          now_s, 'status', 'pending', 'entry', add_to_stream(q, id, priority), 'hn', '0')
        pending[#pending + 1] = id
        out[#out + 1] = {id, 'pending', now, 0}
      else
        hset(jkey, fields, {'status', 'pending', 'entry', add_to_stream(q, id, priority), 'hn', '0'})
        pending[#pending + 1] = id
        out[#out + 1] = {id, 'pending', now, 0}
      end
      if hash ~= '' then
        redis.call('HSET', q.P .. 'dedupe', hash, id)
      end
      if not string.find(prios, priority, 1, true) then prios = prios .. priority end
    end
  end
  if prios ~= q.prios then redis.call('HSET', keys[1], 'prios', prios) end
  move_index_many(q.P, pending, nil, 'pending')
  move_index_many(q.P, scheduled, nil, 'scheduled')
  if #pending > 0 then publish_ready(q, keys[1]) end
  return out
end

-- claim: KEYS[1]=meta; ARGV = count, lease token, worker name.
-- Hands out up to count pending jobs, highest priority first and FIFO within a priority. Due scheduled jobs
-- are promoted first so a claim never waits for the maintenance loop. Returns a list of job records (the
-- values of RECORD's fields, in that order).
local function claim(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  promote_due(q, now, 100)
  if q.paused == '1' then return {} end
  local want, token, worker = tonumber(args[1]), args[2], args[3]
  local out, ids = {}, {}
  local lease_exp = now + q.claim_timeout_ms
  local now_s, lease_exp_s = tostring(now), tostring(lease_exp)

  local function take(stream, n)
    -- The stream only ever holds pending jobs, oldest first: its head is what to hand out. (A plain XRANGE
    -- rather than a consumer group read: the lease zset, not a group's PEL, tracks claims, and a group read
    -- would add a PEL entry to remove again and an XCLAIM per entry to the AOF.)
    local entries = redis.call('XRANGE', stream, '-', '+', 'COUNT', n)
    if #entries == 0 then return end
    local entry_ids = {}
    for i, entry in ipairs(entries) do entry_ids[i] = entry[1] end
    call_many('XDEL', stream, {}, entry_ids)
    for _, entry in ipairs(entries) do
      local id = entry[2][2]
      local jkey = q.P .. 'job:' .. id
      -- Only what the claim does not set itself is read.
      local f = redis.call('HMGET', jkey, 'id', 'payload', 'result', 'error', 'retries', 'priority', 'created_at',
        'completed_at', 'run_at', 'hn')
      -- A job leaves its stream before its record goes, so the record always exists; should it not, the
      -- stale entry is dropped rather than resurrected as a half-record.
      if f[1] then
        local lease = token .. string.format('%x', #out)
        -- The stale stream entry id stays: every way back to pending writes a new one.
        if f[10] == '0' then
          redis.call('HSET', jkey, 'status', 'claimed', 'claimed_at', now_s, 'lease', lease, 'lease_exp',
            lease_exp_s, 'worker', worker)
        else
          hset(jkey, {'status', 'claimed', 'claimed_at', now_s, 'lease', lease, 'lease_exp', lease_exp_s,
            'worker', worker},
            history(jkey, redis.call('HGET', jkey, 'hist'), f[10], now, 'claimed', {lease = lease, worker = worker}))
        end
        -- RECORD's values, in its order.
        out[#out + 1] = {f[1], 'claimed', f[2], f[3], f[4], f[5], f[6], f[7], now, f[8], f[9], lease, lease_exp,
          worker}
        ids[#ids + 1] = id
      end
    end
  end

  for p = 9, 0, -1 do
    if #out >= want then break end
    -- Streams of priorities the queue never had are empty: skipped, so a claim reads 1 stream, not 10.
    if not q.prios or string.find(q.prios, tostring(p), 1, true) then
      take(q.P .. 's:' .. p, want - #out)
    end
  end
  if #ids > 0 then
    move_index_many(q.P, ids, 'pending', 'claimed')
    call_many('ZADD', q.P .. 'leases', {}, scored(ids, lease_exp_s))
    if worker ~= '' then
      redis.call('HSET', q.P .. 'workers', worker, now_s)
      redis.call('HINCRBY', q.P .. 'inhand', worker, #ids)
    end
  end
  return out
end

-- Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries spread out.
local function backoff_ms(q, attempt, jitter)
  if q.retry_delay_ms <= 0 then return 0 end
  local d = math.min(q.retry_delay_ms * 2 ^ (attempt - 1), q.retry_delay_max_ms)
  return math.floor(d / 2 + d / 2 * jitter)
end

-- The outcomes of many claimed jobs, as one call. done collects what is updated once per call: ids
-- completed and dead, jobs let go per worker, and how many completed and failed attempts to count.
local function new_done(now)
  return {completed = {}, dead = {}, hands = {}, c = 0, f = 0, now_s = tostring(now)}
end

local function let_go(done, worker)
  if worker and worker ~= '' then done.hands[worker] = (done.hands[worker] or 0) + 1 end
end

local function complete_one(q, id, lease, result, now, done)
  local jkey = q.P .. 'job:' .. id
  -- Fewer fields than job_fields, in positions check_lease reads the same way (status, lease, retries;
  -- done_lease, done_as): the completion is the most frequent outcome.
  local f = redis.call('HMGET', jkey, 'status', 'lease', 'retries', 'hn', 'worker', 'done_lease', 'done_as')
  local reply = check_lease(id, f, lease, 'complete')
  if reply then return reply end
  if f[4] == '0' then
    redis.call('HSET', jkey, 'result', result, 'done_lease', f[2], 'done_as', 'complete', 'status',
      'completed', 'completed_at', done.now_s, 'lease_exp', '')
  else
    hset(jkey, {'result', result, 'done_lease', f[2], 'done_as', 'complete', 'status', 'completed',
      'completed_at', done.now_s, 'lease_exp', ''},
      history(jkey, redis.call('HGET', jkey, 'hist'), f[4], now, 'completed', {lease = f[2]}))
  end
  done.completed[#done.completed + 1] = id
  let_go(done, f[5])
  done.c = done.c + 1
  return {'completed', 'completed', tonumber(f[3])}
end

local function fail_one(q, id, lease, err, retry, jitter, now, done)
  local jkey = q.P .. 'job:' .. id
  local f = job_fields(jkey)
  local reply = check_lease(id, f, lease, 'fail')
  if reply then return reply end
  local retries = tonumber(f[F_RETRIES])
  done.f = done.f + 1
  let_go(done, f[F_WORKER])
  local outcome = {'error', err, 'done_lease', f[F_LEASE], 'done_as', 'fail'}
  if retry and retries < q.max_retries then
    retries = retries + 1
    local delay = backoff_ms(q, retries, jitter)
    local status = delay > 0 and 'scheduled' or 'pending'
    outcome[#outcome + 1] = 'retries'
    outcome[#outcome + 1] = retries
    requeue(q, id, jkey, f[F_PRIORITY], delay, now,
      hset_fields(outcome, history(jkey, f[F_HIST], f[F_HN], now, 'failed', {lease = f[F_LEASE], error = err, status = status})))
    done.requeued = done.requeued or status == 'pending'
    return {'failed', status, retries}
  end
  hset(jkey, outcome, {'status', 'failed', 'completed_at', now, 'lease_exp', ''},
    history(jkey, f[F_HIST], f[F_HN], now, 'failed', {lease = f[F_LEASE], error = err, status = 'failed'}))
  drop_dedupe(q, f[F_DEDUPE], id)
  done.dead[#done.dead + 1] = id
  return {'failed', 'failed', retries}
end

-- Updates the shared keys for every outcome of one call.
local function settle(q, meta_key, done, now)
  finish_many(q, done.completed, 'completed', now)
  finish_many(q, done.dead, 'failed', now)
  release_hands(q, done.hands)
  count_outcome(q, now, 'c', done.c)
  count_outcome(q, now, 'f', done.f)
  if done.requeued then publish_ready(q, meta_key) end
end

-- complete: KEYS[1]=meta; ARGV = job id, lease ('' = any), result JSON. Returns {'completed'|'repeat', status}.
local function complete(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local done = new_done(now)
  local reply = complete_one(q, args[1], args[2], args[3], now, done)
  settle(q, keys[1], done, now)
  return reply
end

-- fail: KEYS[1]=meta; ARGV = job id, lease ('' = any), error text, retry (1/0), jitter in [0,1).
-- Returns {'failed'|'repeat', new status, retries}.
local function fail(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local done = new_done(now)
  local reply = fail_one(q, args[1], args[2], args[3], args[4] == '1', tonumber(args[5]), now, done)
  settle(q, keys[1], done, now)
  return reply
end

-- ack: KEYS[1]=meta; ARGV = number of completes, then per complete: job id, lease ('' = any), result JSON;
-- then per fail: job id, lease ('' = any), error text, retry (1/0), jitter in [0,1).
-- Completes, then fails, in the order given, each exactly as complete and fail would; an item that cannot be
-- done does not stop the others. Returns per item the reply complete/fail would give, or {'error', message}
-- with message as the error complete/fail would raise.
local function ack(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local done = new_done(now)
  local out = {}
  local nc = tonumber(args[1])
  local function add(reply)
    if reply.err then reply = {'error', reply.err} end
    out[#out + 1] = reply
  end
  for i = 0, nc - 1 do
    add(complete_one(q, args[2 + i * 3], args[3 + i * 3], args[4 + i * 3], now, done))
  end
  for i = 2 + nc * 3, #args, 5 do
    add(fail_one(q, args[i], args[i + 1], args[i + 2], args[i + 3] == '1', tonumber(args[i + 4]), now, done))
  end
  settle(q, keys[1], done, now)
  return out
end

-- extend: KEYS[1]=meta; ARGV = job id, lease ('' = any), seconds ('' = the queue's claim_timeout).
-- Returns the new lease expiry (ms).
local function extend(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id, lease = args[1], args[2]
  local jkey = q.P .. 'job:' .. id
  local f = job_fields(jkey)
  local reply = check_lease(id, f, lease, 'extend')
  if reply then return reply end
  local ms = q.claim_timeout_ms
  if args[3] ~= '' then ms = tonumber(args[3]) * 1000 end
  local now = now_ms()
  local exp = now + ms
  hset(jkey, {'lease_exp', exp}, history(jkey, f[F_HIST], f[F_HN], now, 'extended', {lease = f[F_LEASE], until_ms = exp}))
  redis.call('ZADD', q.P .. 'leases', exp, id)
  return exp
end

-- release: KEYS[1]=meta; ARGV = job id, lease, job id, lease, ...
-- Returns claimed jobs that never reached a worker to the queue at once, without counting an attempt.
local function release(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local n = 0
  local now = now_ms()
  local hands = {}
  for i = 1, #args, 2 do
    local id, lease = args[i], args[i + 1]
    local jkey = q.P .. 'job:' .. id
    local f = job_fields(jkey)
    if f[F_STATUS] == 'claimed' and f[F_LEASE] == lease then
      if f[F_WORKER] and f[F_WORKER] ~= '' then hands[f[F_WORKER]] = (hands[f[F_WORKER]] or 0) + 1 end
      requeue(q, id, jkey, f[F_PRIORITY], 0, 0, hset_fields({'claimed_at', '', 'lease', '', 'worker', ''},
        history(jkey, f[F_HIST], f[F_HN], now, 'released', {lease = lease})))
      n = n + 1
    end
  end
  release_hands(q, hands)
  if n > 0 then publish_ready(q, keys[1]) end
  return n
end

-- cancel: KEYS[1]=meta; ARGV = job id. A pending or scheduled job becomes cancelled.
local function cancel(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id = args[1]
  local jkey = q.P .. 'job:' .. id
  local f = redis.call('HMGET', jkey, 'status', 'priority', 'entry', 'hist', 'hn', 'dedupe')
  if not f[1] then return redis.error_reply('NOJOB job not found') end
  if f[1] == 'pending' then
    redis.call('XDEL', q.P .. 's:' .. f[2], f[3])
  elseif f[1] == 'scheduled' then
    redis.call('ZREM', q.P .. 'sched', id)
  else
    return redis.error_reply('STATE job ' .. id .. ' is ' .. f[1] .. '; only pending or scheduled jobs can be cancelled')
  end
  local now = now_ms()
  hset(jkey, {'status', 'cancelled', 'completed_at', now, 'entry', '', 'run_at', ''},
    history(jkey, f[4], f[5], now, 'cancelled'))
  move_index_many(q.P, {id}, f[1], 'cancelled')
  redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
  drop_dedupe(q, f[6], id)
  return 'cancelled'
end

local function revive(q, id, now)
  local jkey = q.P .. 'job:' .. id
  local f = redis.call('HMGET', jkey, 'status', 'priority', 'dedupe', 'hist', 'hn')
  redis.call('ZREM', q.P .. 'expiry', id)
  if f[3] and f[3] ~= '' then
    redis.call('HSETNX', q.P .. 'dedupe', f[3], id)
  end
  hset(jkey, {'retries', 0, 'claimed_at', '', 'completed_at', '', 'lease', '', 'worker', '', 'done_lease', '',
    'done_as', '', 'status', 'pending', 'entry', add_to_stream(q, id, f[2]), 'run_at', ''},
    history(jkey, f[4], f[5], now, 'retried'))
  move_index_many(q.P, {id}, f[1], 'pending')
end

-- retry: KEYS[1]=meta; ARGV = job id. A dead (failed) or cancelled job goes back to pending, retries reset.
local function retry(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id = args[1]
  local status = redis.call('HGET', q.P .. 'job:' .. id, 'status')
  if not status then return redis.error_reply('NOJOB job not found') end
  if status ~= 'failed' and status ~= 'cancelled' then
    return redis.error_reply('STATE job ' .. id .. ' is ' .. status .. '; only failed or cancelled jobs can be retried')
  end
  revive(q, id, now_ms())
  publish_ready(q, keys[1])
  return 'pending'
end

-- retry_dead: KEYS[1]=meta; ARGV = limit. Revives up to limit dead jobs, oldest first; returns how many.
local function retry_dead(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local ids = redis.call('ZRANGE', q.P .. 'idx:failed', 0, tonumber(args[1]) - 1)
  local now = now_ms()
  for _, id in ipairs(ids) do revive(q, id, now) end
  if #ids > 0 then publish_ready(q, keys[1]) end
  return #ids
end

-- tick: KEYS[1]=meta; ARGV = limit. The due background work of one queue, each kind bounded by limit:
-- promote due scheduled jobs, reclaim jobs whose lease expired, drop records past their retention.
-- Returns {promoted, reclaimed, expired}. Costs O(due work), never O(all jobs).
local function tick(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local limit = tonumber(args[1])
  local now = now_ms()
  local promoted = promote_due(q, now, limit)
  local expired_leases = redis.call('ZRANGE', q.P .. 'leases', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local done = new_done(now)
  for _, id in ipairs(expired_leases) do
    local jkey = q.P .. 'job:' .. id
    local f = job_fields(jkey)
    local retries = tonumber(f[F_RETRIES])
    done.f = done.f + 1
    let_go(done, f[F_WORKER])
    if retries < q.max_retries then
      requeue(q, id, jkey, f[F_PRIORITY], 0, now, hset_fields({'retries', retries + 1, 'error', 'lease expired'},
        history(jkey, f[F_HIST], f[F_HN], now, 'expired', {lease = f[F_LEASE], status = 'pending'})))
      done.requeued = true
    else
      hset(jkey, {'error', 'lease expired on attempt ' .. (retries + 1) .. ' of ' .. (q.max_retries + 1) ..
        '; dead-lettered', 'status', 'failed', 'completed_at', now, 'lease_exp', ''},
        history(jkey, f[F_HIST], f[F_HN], now, 'expired', {lease = f[F_LEASE], status = 'failed'}))
      drop_dedupe(q, f[F_DEDUPE], id)
      done.dead[#done.dead + 1] = id
    end
  end
  settle(q, keys[1], done, now)
  local old = redis.call('ZRANGE', q.P .. 'expiry', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local by_status = {}
  for _, id in ipairs(old) do
    local jkey = q.P .. 'job:' .. id
    local f = redis.call('HMGET', jkey, 'status', 'dedupe')
    drop_dedupe(q, f[2], id)
    if f[1] then
      by_status[f[1]] = by_status[f[1]] or {}
      table.insert(by_status[f[1]], id)
    end
    redis.call('DEL', jkey, q.P .. 'hist:' .. id)
  end
  for status, ids in pairs(by_status) do call_many('ZREM', q.P .. 'idx:' .. status, {}, ids) end
  if #old > 0 then call_many('ZREM', q.P .. 'expiry', {}, old) end
  -- Workers not seen for an hour are forgotten, so the hash stays bounded by recent workers.
  local workers = redis.call('HGETALL', q.P .. 'workers')
  for i = 1, #workers, 2 do
    if tonumber(workers[i + 1]) < now - 3600000 and not redis.call('HGET', q.P .. 'inhand', workers[i]) then
      redis.call('HDEL', q.P .. 'workers', workers[i])
    end
  end
  if promoted > 0 and not done.requeued then publish_ready(q, keys[1]) end
  return {promoted, #expired_leases, #old}
end

-- begin_delete: KEYS[1]=meta. Marks the queue as being deleted: from now on it is "not found" everywhere.
-- Returns 1, or 0 when there is no such queue.
local function begin_delete(keys, args)
  local q = load_queue(keys[1])
  if q.err then return 0 end
  redis.call('HSET', keys[1], 'deleting', '1')
  publish_ready(q, keys[1])
  return 1
end

-- purge: KEYS[1]=meta; ARGV = limit. Deletes up to limit job records of a queue marked deleting; once none
-- are left, deletes every remaining key of the queue. Returns 1 when the queue is gone, 0 when more remain,
-- -1 when the queue is live (not being deleted), which leaves it untouched.
local function purge(keys, args)
  local P = prefix_of(keys[1])
  if redis.call('EXISTS', keys[1]) == 1 and redis.call('HGET', keys[1], 'deleting') ~= '1' then
    return -1
  end
  local budget = tonumber(args[1])
  for _, s in ipairs(STATUSES) do
    local ids = redis.call('ZRANGE', P .. 'idx:' .. s, 0, budget - 1)
    for _, id in ipairs(ids) do
      redis.call('DEL', P .. 'job:' .. id, P .. 'hist:' .. id)
    end
    call_many('ZREM', P .. 'idx:' .. s, {}, ids)
    budget = budget - #ids
    if budget <= 0 then return 0 end
  end
  local rest = {keys[1], P .. 'sched', P .. 'leases', P .. 'expiry', P .. 'dedupe', P .. 'tput', P .. 'workers',
    P .. 'inhand'}
  for p = 0, 9 do table.insert(rest, P .. 's:' .. p) end
  redis.call('DEL', unpack(rest))
  return 1
end

-- get_job: KEYS[1]=meta; ARGV = job id. Returns {record (RECORD's values), history (JSON texts, oldest
-- first)} (read only).
local function get_job(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local rec = redis.call('HMGET', q.P .. 'job:' .. args[1], unpack(RECORD_HIST))
  if not rec[1] then return redis.error_reply('NOJOB job not found') end
  -- Events an older version kept in a list come first; the record's own history follows.
  local events = redis.call('LRANGE', q.P .. 'hist:' .. args[1], 0, -1)
  if rec[16] == '0' then
    events = implicit_events(q.P .. 'job:' .. args[1])
  elseif rec[15] and rec[15] ~= '' then
    for line in string.gmatch(rec[15], '[^\n]+') do events[#events + 1] = line end
  end
  if #events > HISTORY_MAX then
    events = {unpack(events, #events - HISTORY_MAX + 1)}
  end
  rec[16], rec[15] = nil, nil
  return {rec, events}
end

-- list_jobs: KEYS[1]=meta; ARGV = status ('' = all), count, cursor ('' = newest).
-- Returns {has_more, record, record, ...} (RECORD's values each), newest first. With no status filter the
-- per-status indexes are merged, which reads at most count+1 ids from each.
local function list_jobs(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local status, count, cursor = args[1], tonumber(args[2]), args[3]
  local from = '+'
  if cursor ~= '' then from = '(' .. cursor end
  local ids = {}
  local sources = STATUSES
  if status ~= '' then sources = {status} end
  for _, s in ipairs(sources) do
    for _, id in ipairs(redis.call('ZRANGE', q.P .. 'idx:' .. s, from, '-', 'BYLEX', 'REV', 'LIMIT', 0, count + 1)) do
      table.insert(ids, id)
    end
  end
  table.sort(ids, function(a, b) return a > b end)
  local out = {#ids > count and 1 or 0}
  for i = 1, math.min(count, #ids) do
    table.insert(out, redis.call('HMGET', q.P .. 'job:' .. ids[i], unpack(RECORD)))
  end
  return out
end

-- throughput: KEYS[1]=meta; ARGV = number of buckets. Returns {bucket_ms, now, {bucket, completed, failed}...}
-- for the most recent buckets, oldest first (read only).
local function throughput(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local current = math.floor(now / BUCKET_MS)
  local n = math.min(tonumber(args[1]), BUCKETS)
  local out = {BUCKET_MS, now}
  local key = q.P .. 'tput'
  for b = current - n + 1, current do
    local slot = b % BUCKETS
    local f = redis.call('HMGET', key, 't:' .. slot, 'c:' .. slot, 'f:' .. slot)
    if f[1] == tostring(b) then
      table.insert(out, {b, tonumber(f[2]), tonumber(f[3])})
    else
      table.insert(out, {b, 0, 0})
    end
  end
  return out
end

-- workers: KEYS[1]=meta. Returns {name, last_seen_ms, jobs_in_hand, ...} (read only).
local function workers(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local out = {}
  local seen = redis.call('HGETALL', q.P .. 'workers')
  for i = 1, #seen, 2 do
    table.insert(out, seen[i])
    table.insert(out, seen[i + 1])
    table.insert(out, tonumber(redis.call('HGET', q.P .. 'inhand', seen[i]) or '0'))
  end
  return out
end

redis.register_function('starq_create_queue', create_queue)
redis.register_function('starq_update_queue', update_queue)
redis.register_function{function_name = 'starq_queue_info', callback = queue_info, flags = {'no-writes'}}
redis.register_function('starq_submit', submit)
redis.register_function('starq_claim', claim)
redis.register_function('starq_complete', complete)
redis.register_function('starq_ack', ack)
redis.register_function('starq_fail', fail)
redis.register_function('starq_extend', extend)
redis.register_function('starq_release', release)
redis.register_function('starq_cancel', cancel)
redis.register_function('starq_retry', retry)
redis.register_function('starq_retry_dead', retry_dead)
redis.register_function('starq_tick', tick)
redis.register_function('starq_begin_delete', begin_delete)
redis.register_function('starq_purge', purge)
redis.register_function{function_name = 'starq_get_job', callback = get_job, flags = {'no-writes'}}
redis.register_function{function_name = 'starq_list_jobs', callback = list_jobs, flags = {'no-writes'}}
redis.register_function{function_name = 'starq_throughput', callback = throughput, flags = {'no-writes'}}
redis.register_function{function_name = 'starq_workers', callback = workers, flags = {'no-writes'}}
