-- Schedules: a cron expression or an interval that submits a job each time it is due. The engine works out the
-- times (with a cron library); here each run is one atomic step: the due check and the submit, so any number
-- of server processes make exactly one job per due time.
--
-- P.."cron:<name>" hash: def (the definition as given, JSON), created_at, next_ms, last_ms, last_job, paused.

local SCHEDULE = {'def', 'created_at', 'next_ms', 'last_ms', 'last_job', 'paused'}

local function schedule_key(q, name)
  return q.P .. 'cron:' .. name
end

-- Puts a schedule in (or takes it out of) the zset of due times, as its pause says.
local function arm(q, name, next_ms, paused)
  if paused == '1' then
    redis.call('ZREM', q.P .. 'cron_due', name)
  else
    redis.call('ZADD', q.P .. 'cron_due', next_ms, name)
  end
end

-- create_schedule, update_schedule: KEYS[1]=meta; ARGV = name, definition (JSON), next run (ms), paused (1/0).
-- Returns 1. new: whether the schedule is created (it must not exist yet) or updated (it must exist).
local function put_schedule(q, args, new)
  local name = args[1]
  local key = schedule_key(q, name)
  local exists = redis.call('EXISTS', key) == 1
  if new and exists then return redis.error_reply('EXISTS a schedule named ' .. name .. ' already exists') end
  if not new and not exists then return redis.error_reply('NOSCHEDULE schedule not found') end
  if new then
    redis.call('HSET', key, 'created_at', now_ms())
    redis.call('ZADD', q.P .. 'crons', 0, name)
  end
  redis.call('HSET', key, 'def', args[2], 'next_ms', args[3], 'paused', args[4])
  arm(q, name, args[3], args[4])
  return 1
end

-- delete_schedule: KEYS[1]=meta; ARGV = name. Returns 1.
local function delete_schedule(q, args)
  local name = args[1]
  if redis.call('DEL', schedule_key(q, name)) == 0 then return redis.error_reply('NOSCHEDULE schedule not found') end
  redis.call('ZREM', q.P .. 'crons', name)
  redis.call('ZREM', q.P .. 'cron_due', name)
  return 1
end

-- get_schedules: KEYS[1]=meta; ARGV = name ('' = every one). Returns per schedule {name, SCHEDULE's values}.
local function get_schedules(q, args)
  local names = args[1] ~= '' and {args[1]} or redis.call('ZRANGE', q.P .. 'crons', 0, -1)
  local out = {}
  for _, name in ipairs(names) do
    local values = redis.call('HMGET', schedule_key(q, name), unpack(SCHEDULE))
    if values[1] then
      table.insert(values, 1, name)
      out[#out + 1] = values
    elseif args[1] ~= '' then
      return redis.error_reply('NOSCHEDULE schedule not found')
    end
  end
  return out
end

-- run_schedule: KEYS[1]=meta; ARGV = name, due time (ms), next run (ms), then the job as submit takes one
-- (id, payload, priority, payload hash, options JSON). Submits the job and moves the schedule on, only if the
-- schedule is still due at that time (another process may have run it first: then nothing happens).
-- Returns {1, job id, status, skipped (1: a job holding its unique key answered instead)} when it ran, {0} when
-- it did not.
local function run_schedule(q, args)
  local name, due, next_ms = args[1], args[2], args[3]
  local key = schedule_key(q, name)
  local s = read(key, {'next_ms', 'paused'})
  if s.next_ms ~= due or s.paused == '1' then return {0} end
  local now = now_ms()
  local added = new_added(q)
  local opts = args[8] ~= '' and cjson.decode(args[8]) or {}
  opts.sch = name
  local reply = submit_one(q, now, args[4], args[5], args[6], 0, args[7], opts, added)
  settle_added(q, added, now)
  redis.call('HSET', key, 'next_ms', next_ms, 'last_ms', now, 'last_job', reply[1])
  arm(q, name, next_ms, '0')
  return {1, reply[1], reply[2], reply[4] and 1 or 0}
end

register('starq_create_schedule', function(q, args) return put_schedule(q, args, true) end)
register('starq_update_schedule', function(q, args) return put_schedule(q, args, false) end)
register('starq_delete_schedule', delete_schedule)
register('starq_get_schedules', get_schedules, true)
register('starq_run_schedule', run_schedule)
