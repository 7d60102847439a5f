-- Jobs managed by hand (cancel, promote, retry, purge, bulk actions) and the background work of a queue (tick).

-- Each action on one job below (cancel_one ...) is the item of a bulk action and, but delete, a function of its
-- own: one(q, now, done, id) checks the job's status, does the action and leaves the outcome in done for settle.
-- It returns the job's new status or an error reply.

-- The statuses of a job not finished yet.
local UNFINISHED = {}
for i = 1, #STATUSES do
  if not FINISHED[STATUSES[i]] then UNFINISHED[STATUSES[i]] = true end
end

-- Checks that job id, of status (false: there is no such job), has one of the statuses an action takes (allowed:
-- a set; what: "<those statuses> jobs can be <done>", for the error). Returns nil, or the error reply.
local function refused(id, status, allowed, what)
  if not status then return redis.error_reply('NOJOB job not found') end
  if not allowed[status] then return redis.error_reply('STATE job ' .. id .. ' is ' .. status .. '; only ' .. what) end
end

-- A waiting, pending, scheduled or claimed job becomes cancelled; the worker of a claimed one learns it at its
-- next report (409 job_cancelled), so a long job can stop early. Waiting jobs that depend on it are cancelled
-- with it (settle).
local function cancel_one(q, now, done, id)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, OUTCOME)
  local err = refused(id, f.status, UNFINISHED, 'waiting, pending, scheduled or claimed jobs can be cancelled')
  if err then return err end
  unqueue(q, id, f)
  if f.status == 'claimed' then
    redis.call('ZREM', q.P .. 'leases', id)
    let_go(done, f.worker)
  end
  hset(jkey, {'status', 'cancelled', 'completed_at', now, 'entry', '', 'run_at', '', 'lease_exp', '', 'dl', '',
    'kw', ''}, history(jkey, f.hist, f.hn, now, 'cancelled'))
  move_index_many(q.P, {id}, f.status, 'cancelled')
  redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
  done.cancelled[1] = id
  emit(q, now, 'cancelled', id, 'cancelled')
  finish_job(q, f, id, 'cancelled', done)
  return 'cancelled'
end

-- A scheduled job becomes pending now (through its key's line, if any).
local SCHEDULED = {scheduled = true}
local function promote_one(q, now, done, id)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, {'status', 'priority', 'key', 'act', 'hist', 'hn'})
  local err = refused(id, f.status, SCHEDULED, 'scheduled jobs can be promoted')
  if err then return err end
  redis.call('ZREM', q.P .. 'sched', id)
  local fields = f.act == '1' and {'entry', add_to_stream(q, id, f.priority)} or enqueue(q, id, f.priority, f.key)
  hset(jkey, {'status', 'pending', 'run_at', ''}, fields, history(jkey, f.hist, f.hn, now, 'promoted'))
  move_index_many(q.P, {id}, 'scheduled', 'pending')
  done.requeued = true
  return 'pending'
end

local function revive(q, id, now)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, {'status', 'priority', 'key', 'uk', 'dk', 'uf', 'hist', 'hn'})
  redis.call('ZREM', q.P .. 'expiry', id)
  local uk = unique_of(f)
  if uk and empty(f.uf) and not unique_holder(q, uk, now) then hold_unique(q, uk, id, 'inf') end
  hset(jkey, {'retries', 0, 'claimed_at', '', 'completed_at', '', 'lease', '', 'worker', '', 'done_lease', '',
    'done_as', '', 'status', 'pending', 'run_at', ''}, enqueue(q, id, f.priority, f.key),
    history(jkey, f.hist, f.hn, now, 'retried'))
  move_index_many(q.P, {id}, f.status, 'pending')
  emit(q, now, 'retried', id, 'pending')
end

-- A dead (failed) or cancelled job goes back to pending, retries reset (a retry by hand).
local RETRIABLE = {failed = true, cancelled = true}
local function retry_one(q, now, done, id)
  local err = refused(id, redis.call('HGET', q.P .. 'job:' .. id, 'status'), RETRIABLE,
    'failed or cancelled jobs can be retried')
  if err then return err end
  revive(q, id, now)
  done.requeued = true
  return 'pending'
end

-- retry_dead: KEYS[1]=meta; ARGV = limit. Revives up to limit dead jobs, oldest first; returns how many.
local function retry_dead(q, args)
  local ids = redis.call('ZRANGE', q.P .. 'idx:failed', 0, tonumber(args[1]) - 1)
  local now = now_ms()
  for _, id in ipairs(ids) do revive(q, id, now) end
  if #ids > 0 then publish_ready(q, now) end
  return #ids
end

-- What forget_job reads of a finished job (most of those removed: the retention's): it is in no line, holds no
-- lease and no key slot, and its batch has counted it. Every field asked for costs the store a search of the
-- record, found or not.
local FORGET_FINISHED = {'status', 'uk', 'dk', 'tags', 'hd', 'act', 'key'}

-- Removes ids for good: records and every trace (see forget_job; settle(done) after). Each record is read once,
-- and the records, their status indexes and their expiry entries are updated with one command per key for all
-- of them, not one per job: the retention's removal is the third step of every job's life. missing: the index
-- to take the id of a record already gone off (the one it was found in).
local function forget_many(q, ids, done, missing)
  local by_status, records = {}, {}
  for _, id in ipairs(ids) do
    local jkey = q.P .. 'job:' .. id
    local f = read(jkey, FORGET_FINISHED)
    if f.status and not FINISHED[f.status] then f = read(jkey, FORGET) end
    local status = f.status or missing
    by_status[status] = by_status[status] or {}
    table.insert(by_status[status], id)
    forget_job(q, id, f, done, records)
  end
  call_many('DEL', nil, {}, records)
  for status, of_status in pairs(by_status) do call_many('ZREM', index_of(q.P, status), {}, of_status) end
  call_many('ZREM', q.P .. 'expiry', {}, ids)
end

-- purge_status: KEYS[1]=meta; ARGV = status, limit. Removes up to limit jobs of that status (any but claimed),
-- oldest first; the waiting dependents of unfinished ones are cancelled. Returns how many; the engine calls
-- again until fewer come.
local function purge_status(q, args)
  local status = args[1]
  local ids = redis.call('ZRANGE', index_of(q.P, status), 0, tonumber(args[2]) - 1)
  local now = now_ms()
  local done = new_done(now)
  forget_many(q, ids, done, status)
  settle(q, done, now)
  return #ids
end

-- A finished job is removed for good (bulk delete only). Its new status is 'deleted'.
local function delete_one(q, now, done, id)
  local f = read(q.P .. 'job:' .. id, FORGET)
  local err = refused(id, f.status, FINISHED, 'completed, failed or cancelled jobs can be deleted')
  if err then return err end
  forget_job(q, id, f, done)
  redis.call('ZREM', index_of(q.P, f.status), id)
  redis.call('ZREM', q.P .. 'expiry', id)
  return 'deleted'
end

local BULK = {retry = retry_one, cancel = cancel_one, promote = promote_one, delete = delete_one}

-- cancel, promote, retry: KEYS[1]=meta; ARGV = job id. The action on that one job (see cancel_one,
-- promote_one, retry_one). Returns the job's new status.
local SINGLE = {'cancel', 'promote', 'retry'}
for i = 1, #SINGLE do
  local one = BULK[SINGLE[i]]
  register('starq_' .. SINGLE[i], function(q, args) return settled(q, one, args[1]) end)
end

-- bulk: KEYS[1]=meta; ARGV = action (retry, cancel, promote, delete), then job ids (at most the engine's
-- BULK_CHUNK, so the store is never held long). Each id in turn, exactly as its single call (retry, cancel,
-- promote) would do it, its outcome settled before the next: cancelling a job cancels its waiting dependents
-- before a later id is looked at, and an id given twice is done once, then refused as that call would refuse
-- it. An id that cannot be done does not stop the others. Returns per id {'ok', new status} or
-- {'error', message} with message as the single call's error.
local function bulk(q, args)
  local one = BULK[args[1]]
  if not one then return redis.error_reply('STATE unknown bulk action ' .. tostring(args[1])) end
  local now = now_ms()
  local out = {}
  for i = 2, #args do
    -- One settle per item (not one per call, as ack does): that is what keeps each item equal to its single
    -- call when a later id is a dependent of an earlier one. Its cost is a few table reads when there is
    -- nothing to settle, and publish_ready tells waiting claims once per call.
    local done = new_done(now)
    local reply = one(q, now, done, args[i])
    settle(q, done, now)
    out[#out + 1] = type(reply) == 'table' and {'error', reply.err} or {'ok', reply}
  end
  return out
end

-- How long the oldest item of a zset scored by due time (ms) has been due; 0 when none is.
local function overdue_ms(key, now)
  local oldest = redis.call('ZRANGE', key, '-inf', now, 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  return oldest[2] and now - tonumber(oldest[2]) or 0
end

-- tick: KEYS[1]=meta; ARGV = limit, jitter in [0,1). The due background work of one queue, each kind bounded by limit:
-- promote due scheduled jobs, reclaim jobs whose lease expired (or whose attempt timed out), drop records
-- (and finished batches) past their retention and unique keys past their window. Returns {promoted,
-- reclaimed, expired, schedules, outbox, more, lags}: schedules lists the due schedules as name, due time
-- (ms), definition (JSON), for the engine to run; outbox the callback jobs bound for other queues (JSON
-- texts), for the engine to submit there and then remove (outbox_done); more = 1 when some kind of work
-- used its whole limit; lags: how long the oldest scheduled job, expired lease and expired record left due
-- have been due (ms) after this tick, the maintenance lag.
-- Costs O(due work), never O(all jobs).
local function tick(q, args)
  local limit = tonumber(args[1])
  local now = now_ms()
  -- An earlier release kept claimed jobs in an idx:claimed of their own (now the leases zset is their index,
  -- see index_of): a store it wrote may still have one, which nothing reads or updates any more. It goes at
  -- the first tick of each queue in this library's Lua state (the queue's parsed settings remember it).
  local settings = getmetatable(q).__index
  if not settings.claimed_index_gone then
    redis.call('DEL', q.P .. 'idx:claimed')
    settings.claimed_index_gone = true
  end
  local promoted = promote_due(q, now, limit)
  local expired_leases = redis.call('ZRANGE', q.P .. 'leases', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local done = new_done(now)
  for _, id in ipairs(expired_leases) do
    local jkey = q.P .. 'job:' .. id
    local f = read(jkey, OUTCOME)
    local attempt, attempts = tonumber(f.retries) + 1, max_retries_of(q, f) + 1
    local err, delay
    if not empty(f.dl) and now >= tonumber(f.dl) then
      err = 'timeout: attempt ran longer than ' .. f.to .. ' s' -- the retry rules apply, backoff included
    elseif attempt < attempts then
      err, delay = 'lease expired', 0 -- the worker is gone, not the job at fault: straight back in line
    else
      err = 'lease expired on attempt ' .. attempt .. ' of ' .. attempts .. '; dead-lettered'
    end
    failed_attempt(q, id, jkey, f, true, tonumber(args[2]), now, done, {'error', err}, 'expired',
      {lease = f.lease, error = err}, delay)
  end
  settle(q, done, now)
  local old = redis.call('ZRANGE', q.P .. 'expiry', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  if #old > 0 then
    local gone = new_done(now)
    forget_many(q, old, gone, 'completed')
    settle(q, gone, now)
  end
  local batches = redis.call('ZRANGE', q.P .. 'batches', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  for _, bid in ipairs(batches) do
    redis.call('DEL', q.P .. 'batch:' .. bid)
    redis.call('ZREM', q.P .. 'batches', bid)
  end
  -- Unique keys held for a time (unique_for) are let go once it has passed.
  local held = redis.call('ZRANGE', q.P .. 'uniq_until', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  for _, uk in ipairs(held) do
    redis.call('HDEL', q.P .. 'uniq', uk)
    redis.call('ZREM', q.P .. 'uniq_until', uk)
  end
  -- Workers not seen for an hour are forgotten, so the hash stays bounded by recent workers.
  local workers = redis.call('HGETALL', q.P .. 'workers')
  for i = 1, #workers, 2 do
    if tonumber(workers[i + 1]) < now - 3600000
      and tonumber(redis.call('HGET', q.P .. 'inhand', workers[i]) or '0') <= 0 then
      redis.call('HDEL', q.P .. 'workers', workers[i])
      redis.call('HDEL', q.P .. 'inhand', workers[i])
    end
  end
  if promoted > 0 and not done.requeued then publish_ready(q, now) end
  local schedules = {}
  local due = redis.call('ZRANGE', q.P .. 'cron_due', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
  for i = 1, #due, 2 do
    schedules[#schedules + 1] = due[i]
    schedules[#schedules + 1] = due[i + 1]
    schedules[#schedules + 1] = redis.call('HGET', q.P .. 'cron:' .. due[i], 'def')
  end
  -- A kind that used its whole limit may have more due: the engine ticks the queue again at once.
  local more = (promoted >= limit or #expired_leases >= limit or #old >= limit or #batches >= limit
    or #held >= limit) and 1 or 0
  return {promoted, #expired_leases, #old, schedules, redis.call('LRANGE', q.P .. 'outbox', 0, limit - 1), more,
    overdue_ms(q.P .. 'sched', now), overdue_ms(q.P .. 'leases', now), overdue_ms(q.P .. 'expiry', now)}
end

-- outbox_done: KEYS[1]=meta; ARGV = the outbox entries (as tick returned them) now submitted to their queues.
local function outbox_done(keys, args)
  local P = prefix_of(keys[1])
  for _, entry in ipairs(args) do redis.call('LREM', P .. 'outbox', 1, entry) end
  return #args
end

register('starq_retry_dead', retry_dead)
register('starq_purge_status', purge_status)
register('starq_tick', tick)
register_keyed('starq_outbox_done', outbox_done)
register('starq_bulk', bulk)
