-- Reads (all 'no-writes'): one job, a page of jobs, throughput, workers.

-- A job's record fields and its history.
local RECORD_HIST = {'hist', 'hn', 'hd'}
for i = 1, #RECORD do RECORD_HIST[#RECORD_HIST + 1] = RECORD[i] end

-- One job as get_job and watch_job return it: {record, history, dependents} (see get_job), or nil.
local function job_reply(q, id)
  local jkey = q.P .. 'job:' .. id
  local r = read(jkey, RECORD_HIST)
  if not r.id then return nil end
  local events = {}
  if r.hn == '0' then
    events = implicit_events(jkey)
  elseif r.hist and r.hist ~= '' then
    for line in string.gmatch(r.hist, '[^\n]+') do events[#events + 1] = line end
  end
  local dependents = {}
  if r.hd == '1' then
    dependents = redis.call('HKEYS', q.P .. 'dependents:' .. id)
    table.sort(dependents)
  end
  return {values_of(r), events, dependents}
end

-- get_job: KEYS[1]=meta; ARGV = job id. Returns {record (RECORD's values), history (JSON texts, oldest
-- first), dependents (the ids of the jobs that depend on it, oldest first)}.
local function get_job(q, args)
  return job_reply(q, args[1]) or redis.error_reply('NOJOB job not found')
end

-- watch_job: KEYS[1]=meta; ARGV = job id. get_job, and unless the job has finished, marks it watched: when it
-- finishes, its queue and id are published on the "done" channel, which wakes the clients waiting for it.
local function watch_job(q, args)
  local reply = job_reply(q, args[1])
  if not reply then return redis.error_reply('NOJOB job not found') end
  local status = redis.call('HGET', q.P .. 'job:' .. args[1], 'status')
  if status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled' then
    redis.call('HSET', q.P .. 'job:' .. args[1], 'w', '1')
  end
  return reply
end

-- read_events: KEYS[1]=meta; ARGV = after (an event number; -1: none, only the bounds), count. Returns
-- {first, last, event, event, ...}: the numbers of the oldest and newest events in the log (0, 0 when it is
-- empty), then up to count events numbered after `after`, oldest first, each {number, kind, job id, status,
-- at (ms), extra JSON ('' when none)}.
local function read_events(q, args)
  local key = q.P .. 'events'
  local function number(entry) return tonumber(string.sub(entry[1], 3)) end
  local first, last = redis.call('XRANGE', key, '-', '+', 'COUNT', 1), redis.call('XREVRANGE', key, '+', '-',
    'COUNT', 1)
  local out = {first[1] and number(first[1]) or 0, last[1] and number(last[1]) or 0}
  local after = tonumber(args[1])
  if after < 0 then return out end
  for _, entry in ipairs(redis.call('XRANGE', key, '(0-' .. after, '+', 'COUNT', tonumber(args[2]))) do
    local f = {}
    for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
    out[#out + 1] = {number(entry), f.e, f.j, f.s, tonumber(f.at), f.d or ''}
  end
  return out
end

-- get_batch: KEYS[1]=meta; ARGV = batch id. Returns {total, completed, failed, cancelled, created_at,
-- finished_at, callback job id ('' = no callback)}.
local function get_batch(q, args)
  local b = read(q.P .. 'batch:' .. args[1], {'total', 'completed', 'failed', 'cancelled', 'created_at',
    'finished_at', 'cb', 'cbid'})
  if not b.total then return redis.error_reply('NOBATCH batch not found') end
  return {tonumber(b.total), tonumber(b.completed), tonumber(b.failed), tonumber(b.cancelled), b.created_at,
    b.finished_at or '', empty(b.cb) and '' or b.cbid}
end

-- The newest ids below bound ("+" or "(<id>") across the zsets sources, at most n, newest first. The status
-- indexes and tags hold their ids in id order and are read a page at a time; the leases zset (claimed jobs, see
-- index_of) is in expiry order and is read whole, then sorted with the rest.
local function newest_ids(sources, bound, n, P)
  local ids = {}
  local mixed = #sources > 1
  for _, source in ipairs(sources) do
    if source == P .. 'leases' then
      local below = bound ~= '+' and string.sub(bound, 2) or nil
      for _, id in ipairs(redis.call('ZRANGE', source, 0, -1)) do
        if not below or id < below then ids[#ids + 1] = id end
      end
      mixed = true
    else
      for _, id in ipairs(redis.call('ZRANGE', source, bound, '-', 'BYLEX', 'REV', 'LIMIT', 0, n)) do
        ids[#ids + 1] = id
      end
    end
  end
  if not mixed then return ids end
  -- Sorted ascending by Lua's own string comparison (a comparator function would be called per comparison,
  -- several times slower), then the newest n taken from the end.
  table.sort(ids)
  local newest = {}
  for i = #ids, math.max(1, #ids - n + 1), -1 do newest[#newest + 1] = ids[i] end
  return newest
end

-- Whether job id matches a search: its id starts with text, or its payload or error contains it (text is lower
-- case; so is what it is compared with).
local SEARCHED = {'payload', 'error'}
local function matches_text(jkey, id, text)
  if string.sub(id, 1, #text) == text then return true end
  local f = read(jkey, SEARCHED)
  return (f.payload and string.find(string.lower(f.payload), text, 1, true) ~= nil)
    or (f.error and string.find(string.lower(f.error), text, 1, true) ~= nil)
end

-- list_jobs: KEYS[1]=meta; ARGV = status ('' = all), count, cursor ('' = newest), tag ('' = any), search text
-- ('' = none, else lower case), scan budget.
-- Returns {has_more, next cursor, records} (json_array), newest first, every filter applied before paging. One
-- filter alone reads its index page by page. Several (a tag and a status, or a search) scan the newest ids of the
-- narrowest index and check each, at most budget ids per call: a page may then come back short with has_more = 1
-- and a cursor to go on from.
local function list_jobs(q, args)
  local status, count, cursor, tag, text = args[1], tonumber(args[2]), args[3], args[4], args[5]
  local budget = tonumber(args[6])
  local sources = {}
  if tag ~= '' then
    sources[1] = q.P .. 'tag:' .. tag
  elseif status ~= '' then
    sources[1] = index_of(q.P, status)
  else
    for i, s in ipairs(STATUSES) do sources[i] = index_of(q.P, s) end
  end
  local bound = cursor ~= '' and '(' .. cursor or '+'
  local check_status = tag ~= '' and status ~= ''
  local records = {}
  if not check_status and text == '' then
    local ids = newest_ids(sources, bound, count + 1, q.P)
    local n = math.min(count, #ids)
    for i = 1, n do records[i] = record_values(q.P .. 'job:' .. ids[i]) end
    if #ids > count then return {1, ids[n] or '', json_array(records)} end
    return {0, '', json_array(records)}
  end
  local scanned, last = 0, nil
  while #records < count and scanned < budget do
    local ids = newest_ids(sources, bound, math.min(100, budget - scanned), q.P)
    if #ids == 0 then return {0, '', json_array(records)} end
    for _, id in ipairs(ids) do
      scanned = scanned + 1
      last = id
      local jkey = q.P .. 'job:' .. id
      if (not check_status or redis.call('HGET', jkey, 'status') == status)
        and (text == '' or matches_text(jkey, id, text)) then
        records[#records + 1] = record_values(jkey)
        if #records >= count then break end
      end
    end
    bound = '(' .. last
  end
  -- Stopped by the page or the budget: more may follow if any id is left below the last one looked at.
  if #newest_ids(sources, bound, 1, q.P) > 0 then return {1, last, json_array(records)} end
  return {0, '', json_array(records)}
end

-- throughput: KEYS[1]=meta; ARGV = number of buckets. Returns {bucket_ms, now, {bucket, completed, failed}...}
-- for the most recent buckets, oldest first.
local function throughput(q, args)
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
local function workers(q, args)
  local out = {}
  local seen = redis.call('HGETALL', q.P .. 'workers')
  for i = 1, #seen, 2 do
    table.insert(out, seen[i])
    table.insert(out, seen[i + 1])
    table.insert(out, tonumber(redis.call('HGET', q.P .. 'inhand', seen[i]) or '0'))
  end
  return out
end

register('starq_get_job', get_job, true)
register('starq_watch_job', watch_job)
register('starq_read_events', read_events, true)
register('starq_get_batch', get_batch, true)
register('starq_list_jobs', list_jobs, true)
register('starq_throughput', throughput, true)
register('starq_workers', workers, true)
