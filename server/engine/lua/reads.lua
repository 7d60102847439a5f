-- Reads (all 'no-writes'): one job, a page of jobs, throughput, workers.

-- A job's record fields and its history.
local RECORD_HIST = {'hist', 'hn'}
for i = 1, #RECORD do RECORD_HIST[#RECORD_HIST + 1] = RECORD[i] end

-- get_job: KEYS[1]=meta; ARGV = job id. Returns {record (RECORD's values), history (JSON texts, oldest
-- first)}.
local function get_job(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local jkey = q.P .. 'job:' .. args[1]
  local r = read(jkey, RECORD_HIST)
  if not r.id then return redis.error_reply('NOJOB job not found') end
  local events = {}
  if r.hn == '0' then
    events = implicit_events(jkey)
  elseif r.hist and r.hist ~= '' then
    for line in string.gmatch(r.hist, '[^\n]+') do events[#events + 1] = line end
  end
  local rec = {}
  for i, name in ipairs(RECORD) do rec[i] = r[name] end
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
    table.insert(out, record_values(q.P .. 'job:' .. ids[i]))
  end
  return out
end

-- throughput: KEYS[1]=meta; ARGV = number of buckets. Returns {bucket_ms, now, {bucket, completed, failed}...}
-- for the most recent buckets, oldest first.
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

-- workers: KEYS[1]=meta. Returns {name, last_seen_ms, jobs_in_hand, ...}.
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

redis.register_function{function_name = 'starq_get_job', callback = get_job, flags = {'no-writes'}}
redis.register_function{function_name = 'starq_list_jobs', callback = list_jobs, flags = {'no-writes'}}
redis.register_function{function_name = 'starq_throughput', callback = throughput, flags = {'no-writes'}}
redis.register_function{function_name = 'starq_workers', callback = workers, flags = {'no-writes'}}
