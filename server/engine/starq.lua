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

Keys of a queue (P = "starq:{<queue>}:"):
  P.."meta"          hash   settings, paused flag, created_at, deleting flag
  P.."s:<0-9>"       stream one per priority; holds exactly the pending jobs (entry field "id")
  P.."job:<id>"      hash   the job record
  P.."hist:<id>"     list   the job's status history, newest last, capped at HISTORY_MAX entries (JSON each)
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

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function prefix_of(meta_key)
  return string.sub(meta_key, 1, #meta_key - 4)
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

-- Appends one event to a job's history; fields are event-specific (lease, worker, error, status).
local function record(P, id, now, event, fields)
  local entry = fields or {}
  entry.at = now
  entry.event = event
  local key = P .. 'hist:' .. id
  if redis.call('RPUSH', key, cjson.encode(entry)) > HISTORY_MAX then
    redis.call('LTRIM', key, -HISTORY_MAX, -1)
  end
end

local function move_index(P, id, from, to)
  if from then
    redis.call('ZREM', P .. 'idx:' .. from, id)
  end
  redis.call('ZADD', P .. 'idx:' .. to, 0, id)
end

-- Appends a job to the stream of its priority: from here on it can be claimed.
local function make_pending(q, id, jkey, from, priority)
  local entry = redis.call('XADD', q.P .. 's:' .. priority, '*', 'id', id)
  redis.call('HSET', jkey, 'status', 'pending', 'entry', entry, 'run_at', '')
  move_index(q.P, id, from, 'pending')
end

local function make_scheduled(q, id, jkey, from, due)
  redis.call('ZADD', q.P .. 'sched', due, id)
  redis.call('HSET', jkey, 'status', 'scheduled', 'entry', '', 'run_at', due)
  move_index(q.P, id, from, 'scheduled')
end

local function drop_dedupe(q, jkey, id)
  local h = redis.call('HGET', jkey, 'dedupe')
  if h and h ~= '' and redis.call('HGET', q.P .. 'dedupe', h) == id then
    redis.call('HDEL', q.P .. 'dedupe', h)
  end
end

local function count_outcome(q, now, kind)
  local bucket = math.floor(now / BUCKET_MS)
  local slot = bucket % BUCKETS
  local key = q.P .. 'tput'
  if redis.call('HGET', key, 't:' .. slot) ~= tostring(bucket) then
    redis.call('HSET', key, 't:' .. slot, bucket, 'c:' .. slot, 0, 'f:' .. slot, 0)
  end
  redis.call('HINCRBY', key, kind .. ':' .. slot, 1)
end

local function release_hand(q, worker)
  if worker and worker ~= '' then
    if redis.call('HINCRBY', q.P .. 'inhand', worker, -1) <= 0 then
      redis.call('HDEL', q.P .. 'inhand', worker)
    end
  end
end

-- Ends a claimed job for good (completed or dead), keeping its record until the retention passes.
local function finish(q, id, jkey, job_status, now, worker)
  redis.call('ZREM', q.P .. 'leases', id)
  redis.call('HSET', jkey, 'status', job_status, 'completed_at', now, 'lease_exp', '')
  move_index(q.P, id, 'claimed', job_status)
  redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
  release_hand(q, worker)
end

local function job_fields(jkey)
  return redis.call('HMGET', jkey, 'status', 'lease', 'retries', 'priority', 'worker', 'done_lease', 'done_as')
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
  for _, id in ipairs(due) do
    local jkey = q.P .. 'job:' .. id
    redis.call('ZREM', q.P .. 'sched', id)
    make_pending(q, id, jkey, 'scheduled', redis.call('HGET', jkey, 'priority'))
  end
  return #due
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
  redis.call('HSET', meta, 'created_at', now_ms(), 'paused', '0', unpack(args))
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
  local woke = false
  local dedupe_on = q.dedupe == '1'
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
      table.insert(out, {existing, f[1], f[2], 1})
    else
      if not dedupe_on then hash = '' end
      redis.call('HSET', jkey, 'id', id, 'payload', payload, 'priority', priority, 'retries', 0,
        'created_at', now, 'claimed_at', '', 'completed_at', '', 'dedupe', hash, 'error', '')
      if hash ~= '' then
        redis.call('HSET', q.P .. 'dedupe', hash, id)
      end
      record(q.P, id, now, 'submitted', due > now and {run_at = due} or nil)
      if due > now then
        make_scheduled(q, id, jkey, nil, due)
        table.insert(out, {id, 'scheduled', now, 0})
      else
        make_pending(q, id, jkey, nil, priority)
        woke = true
        table.insert(out, {id, 'pending', now, 0})
      end
    end
  end
  if woke then publish_ready(q, keys[1]) end
  return out
end

-- claim: KEYS[1]=meta; ARGV = count, lease token, worker name.
-- Hands out up to count pending jobs, highest priority first and FIFO within a priority. Due scheduled jobs
-- are promoted first so a claim never waits for the maintenance loop. Returns a list of job records (flat
-- field/value lists, as HGETALL).
local function claim(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  promote_due(q, now, 100)
  if q.paused == '1' then return {} end
  local want, token, worker = tonumber(args[1]), args[2], args[3]
  local out = {}
  local lease_exp = now + q.claim_timeout_ms
  for p = 9, 0, -1 do
    if #out >= want then break end
    local stream = q.P .. 's:' .. p
    if redis.call('XLEN', stream) > 0 then
      local got = redis.call('XREADGROUP', 'GROUP', GROUP, 'starq', 'COUNT', want - #out, 'STREAMS', stream, '>')
      if got then
        for _, entry in ipairs(got[1][2]) do
          -- The stream only ever holds pending jobs: the lease zset, not the group's PEL, tracks claims.
          redis.call('XACK', stream, GROUP, entry[1])
          redis.call('XDEL', stream, entry[1])
          local id = entry[2][2]
          local jkey = q.P .. 'job:' .. id
          -- A job leaves its stream before its record goes, so the record always exists; should it not, the
          -- stale entry is dropped rather than resurrected as a half-record.
          if redis.call('EXISTS', jkey) == 1 then
            local lease = token .. string.format('%x', #out)
            redis.call('HSET', jkey, 'status', 'claimed', 'claimed_at', now, 'lease', lease,
              'lease_exp', lease_exp, 'worker', worker, 'entry', '')
            move_index(q.P, id, 'pending', 'claimed')
            redis.call('ZADD', q.P .. 'leases', lease_exp, id)
            record(q.P, id, now, 'claimed', {lease = lease, worker = worker})
            table.insert(out, redis.call('HGETALL', jkey))
          end
        end
      end
    end
  end
  if #out > 0 and worker ~= '' then
    redis.call('HSET', q.P .. 'workers', worker, now)
    redis.call('HINCRBY', q.P .. 'inhand', worker, #out)
  end
  return out
end

-- complete: KEYS[1]=meta; ARGV = job id, lease ('' = any), result JSON. Returns {'completed'|'repeat', status}.
local function complete(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id, lease, result = args[1], args[2], args[3]
  local jkey = q.P .. 'job:' .. id
  local f = job_fields(jkey)
  local reply = check_lease(id, f, lease, 'complete')
  if reply then return reply end
  local now = now_ms()
  redis.call('HSET', jkey, 'result', result, 'done_lease', f[2], 'done_as', 'complete')
  finish(q, id, jkey, 'completed', now, f[5])
  record(q.P, id, now, 'completed', {lease = f[2]})
  count_outcome(q, now, 'c')
  return {'completed', 'completed', tonumber(f[3])}
end

-- Puts a job that just left the claimed state back in line, now or after a backoff.
local function requeue(q, id, jkey, priority, delay_ms, now)
  redis.call('ZREM', q.P .. 'leases', id)
  redis.call('HSET', jkey, 'lease_exp', '')
  if delay_ms > 0 then
    make_scheduled(q, id, jkey, 'claimed', now + delay_ms)
    return 'scheduled'
  end
  make_pending(q, id, jkey, 'claimed', priority)
  return 'pending'
end

-- Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries spread out.
local function backoff_ms(q, attempt, jitter)
  if q.retry_delay_ms <= 0 then return 0 end
  local d = math.min(q.retry_delay_ms * 2 ^ (attempt - 1), q.retry_delay_max_ms)
  return math.floor(d / 2 + d / 2 * jitter)
end

-- fail: KEYS[1]=meta; ARGV = job id, lease ('' = any), error text, retry (1/0), jitter in [0,1).
-- Returns {'failed'|'repeat', new status, retries}.
local function fail(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id, lease, err, retry, jitter = args[1], args[2], args[3], args[4] == '1', tonumber(args[5])
  local jkey = q.P .. 'job:' .. id
  local f = job_fields(jkey)
  local reply = check_lease(id, f, lease, 'fail')
  if reply then return reply end
  local now = now_ms()
  local retries = tonumber(f[3])
  redis.call('HSET', jkey, 'error', err, 'done_lease', f[2], 'done_as', 'fail')
  count_outcome(q, now, 'f')
  if retry and retries < q.max_retries then
    retries = retries + 1
    redis.call('HSET', jkey, 'retries', retries)
    release_hand(q, f[5])
    local status = requeue(q, id, jkey, f[4], backoff_ms(q, retries, jitter), now)
    record(q.P, id, now, 'failed', {lease = f[2], error = err, status = status})
    if status == 'pending' then publish_ready(q, keys[1]) end
    return {'failed', status, retries}
  end
  finish(q, id, jkey, 'failed', now, f[5])
  drop_dedupe(q, jkey, id)
  record(q.P, id, now, 'failed', {lease = f[2], error = err, status = 'failed'})
  return {'failed', 'failed', retries}
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
  local exp = now_ms() + ms
  redis.call('HSET', jkey, 'lease_exp', exp)
  redis.call('ZADD', q.P .. 'leases', exp, id)
  record(q.P, id, exp - ms, 'extended', {lease = f[2], until_ms = exp})
  return exp
end

-- release: KEYS[1]=meta; ARGV = job id, lease, job id, lease, ...
-- Returns claimed jobs that never reached a worker to the queue at once, without counting an attempt.
local function release(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local n = 0
  for i = 1, #args, 2 do
    local id, lease = args[i], args[i + 1]
    local jkey = q.P .. 'job:' .. id
    local f = job_fields(jkey)
    if f[1] == 'claimed' and f[2] == lease then
      release_hand(q, f[5])
      redis.call('HSET', jkey, 'claimed_at', '', 'lease', '', 'worker', '')
      requeue(q, id, jkey, f[4], 0, 0)
      record(q.P, id, now_ms(), 'released', {lease = lease})
      n = n + 1
    end
  end
  if n > 0 then publish_ready(q, keys[1]) end
  return n
end

-- cancel: KEYS[1]=meta; ARGV = job id. A pending or scheduled job becomes cancelled.
local function cancel(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id = args[1]
  local jkey = q.P .. 'job:' .. id
  local f = redis.call('HMGET', jkey, 'status', 'priority', 'entry')
  if not f[1] then return redis.error_reply('NOJOB job not found') end
  if f[1] == 'pending' then
    redis.call('XDEL', q.P .. 's:' .. f[2], f[3])
  elseif f[1] == 'scheduled' then
    redis.call('ZREM', q.P .. 'sched', id)
  else
    return redis.error_reply('STATE job ' .. id .. ' is ' .. f[1] .. '; only pending or scheduled jobs can be cancelled')
  end
  local now = now_ms()
  redis.call('HSET', jkey, 'status', 'cancelled', 'completed_at', now, 'entry', '', 'run_at', '')
  move_index(q.P, id, f[1], 'cancelled')
  redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
  record(q.P, id, now, 'cancelled')
  drop_dedupe(q, jkey, id)
  return 'cancelled'
end

local function revive(q, id)
  local jkey = q.P .. 'job:' .. id
  local f = redis.call('HMGET', jkey, 'status', 'priority', 'dedupe')
  redis.call('ZREM', q.P .. 'expiry', id)
  redis.call('HSET', jkey, 'retries', 0, 'claimed_at', '', 'completed_at', '', 'lease', '', 'worker', '',
    'done_lease', '', 'done_as', '')
  if f[3] and f[3] ~= '' then
    redis.call('HSETNX', q.P .. 'dedupe', f[3], id)
  end
  make_pending(q, id, jkey, f[1], f[2])
  record(q.P, id, now_ms(), 'retried')
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
  revive(q, id)
  publish_ready(q, keys[1])
  return 'pending'
end

-- retry_dead: KEYS[1]=meta; ARGV = limit. Revives up to limit dead jobs, oldest first; returns how many.
local function retry_dead(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local ids = redis.call('ZRANGE', q.P .. 'idx:failed', 0, tonumber(args[1]) - 1)
  for _, id in ipairs(ids) do revive(q, id) end
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
  local requeued = 0
  for _, id in ipairs(expired_leases) do
    local jkey = q.P .. 'job:' .. id
    local f = job_fields(jkey)
    local retries = tonumber(f[3])
    count_outcome(q, now, 'f')
    if retries < q.max_retries then
      redis.call('HSET', jkey, 'retries', retries + 1, 'error', 'lease expired')
      release_hand(q, f[5])
      requeue(q, id, jkey, f[4], 0, now)
      record(q.P, id, now, 'expired', {lease = f[2], status = 'pending'})
      requeued = requeued + 1
    else
      redis.call('HSET', jkey, 'error',
        'lease expired on attempt ' .. (retries + 1) .. ' of ' .. (q.max_retries + 1) .. '; dead-lettered')
      finish(q, id, jkey, 'failed', now, f[5])
      drop_dedupe(q, jkey, id)
      record(q.P, id, now, 'expired', {lease = f[2], status = 'failed'})
    end
  end
  local old = redis.call('ZRANGE', q.P .. 'expiry', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  for _, id in ipairs(old) do
    local jkey = q.P .. 'job:' .. id
    drop_dedupe(q, jkey, id)
    local status = redis.call('HGET', jkey, 'status')
    if status then redis.call('ZREM', q.P .. 'idx:' .. status, id) end
    redis.call('DEL', jkey, q.P .. 'hist:' .. id)
    redis.call('ZREM', q.P .. 'expiry', id)
  end
  -- Workers not seen for an hour are forgotten, so the hash stays bounded by recent workers.
  local workers = redis.call('HGETALL', q.P .. 'workers')
  for i = 1, #workers, 2 do
    if tonumber(workers[i + 1]) < now - 3600000 and not redis.call('HGET', q.P .. 'inhand', workers[i]) then
      redis.call('HDEL', q.P .. 'workers', workers[i])
    end
  end
  if promoted + requeued > 0 then publish_ready(q, keys[1]) end
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
      redis.call('ZREM', P .. 'idx:' .. s, id)
    end
    budget = budget - #ids
    if budget <= 0 then return 0 end
  end
  local rest = {keys[1], P .. 'sched', P .. 'leases', P .. 'expiry', P .. 'dedupe', P .. 'tput', P .. 'workers',
    P .. 'inhand'}
  for p = 0, 9 do table.insert(rest, P .. 's:' .. p) end
  redis.call('DEL', unpack(rest))
  return 1
end

-- get_job: KEYS[1]=meta; ARGV = job id. Returns {record, history} (read only).
local function get_job(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local rec = redis.call('HGETALL', q.P .. 'job:' .. args[1])
  if #rec == 0 then return redis.error_reply('NOJOB job not found') end
  return {rec, redis.call('LRANGE', q.P .. 'hist:' .. args[1], 0, -1)}
end

-- list_jobs: KEYS[1]=meta; ARGV = status ('' = all), count, cursor ('' = newest).
-- Returns {has_more, record, record, ...}, newest first. With no status filter the per-status indexes are
-- merged, which reads at most count+1 ids from each.
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
    table.insert(out, redis.call('HGETALL', q.P .. 'job:' .. ids[i]))
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
