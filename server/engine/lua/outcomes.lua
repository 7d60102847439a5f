-- Outcomes of claimed jobs: complete, fail (retry with backoff or dead-letter), ack (many at once), extend a
-- lease, report progress, and release a job back to the queue without counting an attempt.

-- Fewer fields than OUTCOME, enough for check_lease and finish_job: the completion is the most frequent outcome.
local COMPLETE = {'status', 'lease', 'retries', 'hn', 'worker', 'done_lease', 'done_as', 'key', 'act', 'uk', 'dk',
  'w', 'hd', 'bat'}

local function complete_one(q, now, done, id, lease, result)
  local jkey, f, reply = leased(q, id, lease, 'complete', COMPLETE)
  if reply then return reply end
  if f.hn == '0' then
    redis.call('HSET', jkey, 'result', result, 'done_lease', f.lease, 'done_as', 'complete', 'status',
      'completed', 'completed_at', done.now_s, 'lease_exp', '')
  else
    hset(jkey, {'result', result, 'done_lease', f.lease, 'done_as', 'complete', 'status', 'completed',
      'completed_at', done.now_s, 'lease_exp', ''},
      history(jkey, redis.call('HGET', jkey, 'hist'), f.hn, now, 'completed', {lease = f.lease}))
  end
  done.completed[#done.completed + 1] = id
  emit(q, now, 'completed', id, 'completed')
  let_go(done, f.worker)
  done.c = done.c + 1
  finish_job(q, f, id, 'completed', done)
  return {'completed', 'completed', tonumber(f.retries)}
end

local function fail_one(q, now, done, id, lease, err, retry, jitter)
  local jkey, f, reply = leased(q, id, lease, 'fail', OUTCOME)
  if reply then return reply end
  local status, retries = failed_attempt(q, id, jkey, f, retry, jitter, now, done,
    {'error', err, 'done_lease', f.lease, 'done_as', 'fail'}, 'failed', {lease = f.lease, error = err})
  return {'failed', status, retries}
end

-- complete: KEYS[1]=meta; ARGV = job id, lease ('' = any), result JSON. Returns {'completed'|'repeat', status}.
local function complete(q, args)
  return settled(q, complete_one, args[1], args[2], args[3])
end

-- fail: KEYS[1]=meta; ARGV = job id, lease ('' = any), error text, retry (1/0), jitter in [0,1).
-- Returns {'failed'|'repeat', new status, retries}.
local function fail(q, args)
  return settled(q, fail_one, args[1], args[2], args[3], args[4] == '1', tonumber(args[5]))
end

-- ack: KEYS[1]=meta; ARGV = number of completes, then per complete: job id, lease ('' = any), result JSON;
-- then per fail: job id, lease ('' = any), error text, retry (1/0), jitter in [0,1).
-- Completes, then fails, in the order given, each exactly as complete and fail would; an item that cannot be
-- done does not stop the others. Returns, as json_array, per item the reply complete/fail would give, or
-- {'error', message} with message as the error complete/fail would raise.
local function ack(q, args)
  local now = now_ms()
  local done = new_done(now)
  local out = {}
  local nc = tonumber(args[1])
  local function add(reply)
    if reply.err then reply = {'error', reply.err} end
    out[#out + 1] = reply
  end
  for i = 0, nc - 1 do
    add(complete_one(q, now, done, args[2 + i * 3], args[3 + i * 3], args[4 + i * 3]))
  end
  for i = 2 + nc * 3, #args, 5 do
    add(fail_one(q, now, done, args[i], args[i + 1], args[i + 2], args[i + 3] == '1', tonumber(args[i + 4])))
  end
  settle(q, done, now)
  return json_array(out)
end

-- extend: KEYS[1]=meta; ARGV = job id, lease ('' = any), seconds ('' = the queue's claim_timeout).
-- Returns the new lease expiry (ms). A job with a timeout never gets a lease past its attempt's deadline.
local function extend(q, args)
  local id, jkey, f, reply = leased_call(q, args, 'extend', OUTCOME)
  if reply then return reply end
  local ms = q.claim_timeout_ms
  if args[3] ~= '' then ms = tonumber(args[3]) * 1000 end
  local now = now_ms()
  local exp = now + ms
  if not empty(f.dl) then exp = math.min(exp, tonumber(f.dl)) end
  hset(jkey, {'lease_exp', exp}, history(jkey, f.hist, f.hn, now, 'extended', {lease = f.lease, until_ms = exp}))
  redis.call('ZADD', q.P .. 'leases', exp, id)
  return exp
end

-- Puts a claimed job back in line without counting an attempt (after delay_ms, scheduled, if > 0). It keeps
-- its key's slot. Returns its new status.
local function release_one(q, id, jkey, f, delay_ms, now, hands)
  if not empty(f.worker) then hands[f.worker] = (hands[f.worker] or 0) + 1 end
  local event = {lease = f.lease}
  if delay_ms > 0 then event.run_at = now + delay_ms end
  local status = requeue(q, id, jkey, f.priority, delay_ms, now, hset_fields({'claimed_at', '', 'lease', '',
    'worker', ''}, history(jkey, f.hist, f.hn, now, 'released', event)))
  emit(q, now, 'released', id, status)
  return status
end

-- release: KEYS[1]=meta; ARGV = job id, lease ('' = any), delay (seconds). A worker gives its job back (when it
-- shuts down, say): same checks as complete. Returns {'released'|'repeat', status}.
local function release(q, args)
  local id, jkey, f, reply = leased_call(q, args, 'release', OUTCOME)
  if reply then return reply end
  local now = now_ms()
  local hands = {}
  local status = release_one(q, id, jkey, f, math.floor(tonumber(args[3]) * 1000), now, hands)
  redis.call('HSET', jkey, 'done_lease', f.lease, 'done_as', 'release')
  release_hands(q, hands)
  if status == 'pending' then publish_ready(q, now) end
  return {'released', status}
end

-- release_undelivered: KEYS[1]=meta; ARGV = job id, lease, job id, lease, ...
-- Claimed jobs that never reached their client go back to the queue at once, as if never claimed (those no
-- longer held under that lease are left alone). Returns how many went back.
local function release_undelivered(q, args)
  local n = 0
  local now = now_ms()
  local hands = {}
  for i = 1, #args, 2 do
    local id, lease = args[i], args[i + 1]
    local jkey = q.P .. 'job:' .. id
    local f = read(jkey, OUTCOME)
    if f.status == 'claimed' and f.lease == lease then
      release_one(q, id, jkey, f, 0, now, hands)
      n = n + 1
    end
  end
  release_hands(q, hands)
  if n > 0 then publish_ready(q, now) end
  return n
end

-- progress: KEYS[1]=meta; ARGV = job id, lease ('' = any), progress (JSON text). The worker of a claimed job
-- reports how far it got: same checks as complete. Returns 'claimed'.
-- What check_lease needs: all that progress reads.
local REPORTED = {'status', 'lease', 'retries', 'done_lease', 'done_as'}
local function progress(q, args)
  local id, jkey, _, reply = leased_call(q, args, 'progress', REPORTED)
  if reply then return reply end
  redis.call('HSET', jkey, 'progress', args[3])
  if q.events then emit(q, now_ms(), 'progress', id, 'claimed', '{"progress":' .. args[3] .. '}') end
  return 'claimed'
end

register('starq_complete', complete)
register('starq_progress', progress)
register('starq_fail', fail)
register('starq_ack', ack)
register('starq_extend', extend)
register('starq_release', release)
register('starq_release_undelivered', release_undelivered)
