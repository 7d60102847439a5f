-- Queues: create, change, read, and delete in bounded chunks.

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

-- update_queue: KEYS[1]=meta; ARGV = field, value, ... Returns 1. Resuming, or raising a limit, wakes waiting
-- claims; raising key_concurrency lets in the jobs its keys' lines held back.
local function update_queue(q, args)
  redis.call('HSET', q.meta, unpack(args))
  redis.call('HINCRBY', q.meta, 'v', 1) -- settings cached by version (load_queue) are read again
  local wake = false
  for i = 1, #args, 2 do
    local name, value = args[i], args[i + 1]
    if (name == 'paused' and value == '0') or name == 'concurrency' or name == 'rate_limit' then
      wake = true
    elseif name == 'key_concurrency' then
      q.key_concurrency = tonumber(value)
      for _, key in ipairs(redis.call('SMEMBERS', q.P .. 'kwait')) do
        if admit_key(q, key) > 0 then wake = true end
      end
    end
  end
  if wake then publish_ready(q, now_ms()) end
  return 1
end

-- queue_info: KEYS[1]=meta. Returns the meta hash followed by count pairs (read only).
local function queue_info(q, args)
  local out = redis.call('HGETALL', q.meta)
  for _, s in ipairs(STATUSES) do
    table.insert(out, 'count:' .. s)
    table.insert(out, redis.call('ZCARD', index_of(q.P, s)))
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

-- begin_delete: KEYS[1]=meta. Marks the queue as being deleted: from now on it is "not found" everywhere.
-- Returns 1, or 0 when there is no such queue.
local function begin_delete(keys, args)
  local q = load_queue(keys[1])
  if q.err then return 0 end
  redis.call('HSET', keys[1], 'deleting', '1')
  publish_ready(q, now_ms())
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
    local ids = redis.call('ZRANGE', index_of(P, s), 0, budget - 1)
    for _, id in ipairs(ids) do
      local f = read(P .. 'job:' .. id, {'tags', 'hd'})
      if f.tags then
        for _, tag in ipairs(cjson.decode(f.tags)) do redis.call('ZREM', P .. 'tag:' .. tag, id) end
      end
      if f.hd == '1' then redis.call('DEL', P .. 'dependents:' .. id) end
      redis.call('DEL', P .. 'job:' .. id)
    end
    call_many('ZREM', index_of(P, s), {}, ids)
    budget = budget - #ids
    if budget <= 0 then return 0 end
  end
  local rest = {keys[1], P .. 'sched', P .. 'leases', P .. 'expiry', P .. 'uniq', P .. 'uniq_until', P .. 'kact',
    P .. 'kwait', P .. 'rl', P .. 'crons', P .. 'cron_due', P .. 'tput', P .. 'workers', P .. 'inhand', P .. 'batches',
    P .. 'outbox', P .. 'events', P .. 'idx:claimed'}
  for p = 0, 9 do table.insert(rest, P .. 's:' .. p) end
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'kwait')) do table.insert(rest, P .. 'kq:' .. key) end
  for _, name in ipairs(redis.call('ZRANGE', P .. 'crons', 0, -1)) do table.insert(rest, P .. 'cron:' .. name) end
  for _, bid in ipairs(redis.call('ZRANGE', P .. 'batches', 0, -1)) do table.insert(rest, P .. 'batch:' .. bid) end
  for i = 1, #rest, CHUNK do redis.call('DEL', unpack(rest, i, math.min(i + CHUNK - 1, #rest))) end
  return 1
end

register_keyed('starq_create_queue', create_queue)
register('starq_update_queue', update_queue)
register('starq_queue_info', queue_info, true)
register_keyed('starq_begin_delete', begin_delete)
register_keyed('starq_purge', purge)
