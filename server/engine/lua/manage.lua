-- Jobs managed by hand (cancel, retry) and the background work of a queue (tick).

-- cancel: KEYS[1]=meta; ARGV = job id. A pending or scheduled job becomes cancelled.
local function cancel(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id = args[1]
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, {'status', 'priority', 'entry', 'hist', 'hn', 'dedupe'})
  if not f.status then return redis.error_reply('NOJOB job not found') end
  if f.status == 'pending' then
    redis.call('XDEL', q.P .. 's:' .. f.priority, f.entry)
  elseif f.status == 'scheduled' then
    redis.call('ZREM', q.P .. 'sched', id)
  else
    return redis.error_reply('STATE job ' .. id .. ' is ' .. f.status ..
      '; only pending or scheduled jobs can be cancelled')
  end
  local now = now_ms()
  hset(jkey, {'status', 'cancelled', 'completed_at', now, 'entry', '', 'run_at', ''},
    history(jkey, f.hist, f.hn, now, 'cancelled'))
  move_index_many(q.P, {id}, f.status, 'cancelled')
  redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
  drop_dedupe(q, f.dedupe, id)
  return 'cancelled'
end

local function revive(q, id, now)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, {'status', 'priority', 'dedupe', 'hist', 'hn'})
  redis.call('ZREM', q.P .. 'expiry', id)
  if f.dedupe and f.dedupe ~= '' then
    redis.call('HSETNX', q.P .. 'dedupe', f.dedupe, id)
  end
  hset(jkey, {'retries', 0, 'claimed_at', '', 'completed_at', '', 'lease', '', 'worker', '', 'done_lease', '',
    'done_as', '', 'status', 'pending', 'entry', add_to_stream(q, id, f.priority), 'run_at', ''},
    history(jkey, f.hist, f.hn, now, 'retried'))
  move_index_many(q.P, {id}, f.status, 'pending')
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
  publish_ready(q)
  return 'pending'
end

-- retry_dead: KEYS[1]=meta; ARGV = limit. Revives up to limit dead jobs, oldest first; returns how many.
local function retry_dead(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local ids = redis.call('ZRANGE', q.P .. 'idx:failed', 0, tonumber(args[1]) - 1)
  local now = now_ms()
  for _, id in ipairs(ids) do revive(q, id, now) end
  if #ids > 0 then publish_ready(q) end
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
    local f = read(jkey, OUTCOME)
    local retries = tonumber(f.retries)
    done.f = done.f + 1
    let_go(done, f.worker)
    if retries < q.max_retries then
      requeue(q, id, jkey, f.priority, 0, now, hset_fields({'retries', retries + 1, 'error', 'lease expired'},
        history(jkey, f.hist, f.hn, now, 'expired', {lease = f.lease, status = 'pending'})))
      done.requeued = true
    else
      hset(jkey, {'error', 'lease expired on attempt ' .. (retries + 1) .. ' of ' .. (q.max_retries + 1) ..
        '; dead-lettered', 'status', 'failed', 'completed_at', now, 'lease_exp', ''},
        history(jkey, f.hist, f.hn, now, 'expired', {lease = f.lease, status = 'failed'}))
      drop_dedupe(q, f.dedupe, id)
      done.dead[#done.dead + 1] = id
    end
  end
  settle(q, done, now)
  local old = redis.call('ZRANGE', q.P .. 'expiry', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  local by_status = {}
  for _, id in ipairs(old) do
    local jkey = q.P .. 'job:' .. id
    local f = read(jkey, {'status', 'dedupe'})
    drop_dedupe(q, f.dedupe, id)
    if f.status then
      by_status[f.status] = by_status[f.status] or {}
      table.insert(by_status[f.status], id)
    end
    redis.call('DEL', jkey)
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
  if promoted > 0 and not done.requeued then publish_ready(q) end
  return {promoted, #expired_leases, #old}
end

redis.register_function('starq_cancel', cancel)
redis.register_function('starq_retry', retry)
redis.register_function('starq_retry_dead', retry_dead)
redis.register_function('starq_tick', tick)
