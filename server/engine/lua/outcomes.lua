-- Outcomes of claimed jobs: complete, fail (retry with backoff or dead-letter), ack (many at once), extend a
-- lease, and release jobs that never reached their worker.

-- Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries spread out.
local function backoff_ms(q, attempt, jitter)
  if q.retry_delay_ms <= 0 then return 0 end
  local d = math.min(q.retry_delay_ms * 2 ^ (attempt - 1), q.retry_delay_max_ms)
  return math.floor(d / 2 + d / 2 * jitter)
end

-- Fewer fields than OUTCOME, enough for check_lease: the completion is the most frequent outcome.
local COMPLETE = {'status', 'lease', 'retries', 'hn', 'worker', 'done_lease', 'done_as'}

local function complete_one(q, id, lease, result, now, done)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, COMPLETE)
  local reply = check_lease(id, f, lease, 'complete')
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
  let_go(done, f.worker)
  done.c = done.c + 1
  return {'completed', 'completed', tonumber(f.retries)}
end

local function fail_one(q, id, lease, err, retry, jitter, now, done)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, OUTCOME)
  local reply = check_lease(id, f, lease, 'fail')
  if reply then return reply end
  local retries = tonumber(f.retries)
  done.f = done.f + 1
  let_go(done, f.worker)
  local outcome = {'error', err, 'done_lease', f.lease, 'done_as', 'fail'}
  if retry and retries < q.max_retries then
    retries = retries + 1
    local delay = backoff_ms(q, retries, jitter)
    local status = delay > 0 and 'scheduled' or 'pending'
    outcome[#outcome + 1] = 'retries'
    outcome[#outcome + 1] = retries
    requeue(q, id, jkey, f.priority, delay, now,
      hset_fields(outcome, history(jkey, f.hist, f.hn, now, 'failed', {lease = f.lease, error = err, status = status})))
    done.requeued = done.requeued or status == 'pending'
    return {'failed', status, retries}
  end
  hset(jkey, outcome, {'status', 'failed', 'completed_at', now, 'lease_exp', ''},
    history(jkey, f.hist, f.hn, now, 'failed', {lease = f.lease, error = err, status = 'failed'}))
  drop_dedupe(q, f.dedupe, id)
  done.dead[#done.dead + 1] = id
  return {'failed', 'failed', retries}
end

-- complete: KEYS[1]=meta; ARGV = job id, lease ('' = any), result JSON. Returns {'completed'|'repeat', status}.
local function complete(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local done = new_done(now)
  local reply = complete_one(q, args[1], args[2], args[3], now, done)
  settle(q, done, now)
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
  settle(q, done, now)
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
  settle(q, done, now)
  return out
end

-- extend: KEYS[1]=meta; ARGV = job id, lease ('' = any), seconds ('' = the queue's claim_timeout).
-- Returns the new lease expiry (ms).
local function extend(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local id, lease = args[1], args[2]
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, OUTCOME)
  local reply = check_lease(id, f, lease, 'extend')
  if reply then return reply end
  local ms = q.claim_timeout_ms
  if args[3] ~= '' then ms = tonumber(args[3]) * 1000 end
  local now = now_ms()
  local exp = now + ms
  hset(jkey, {'lease_exp', exp}, history(jkey, f.hist, f.hn, now, 'extended', {lease = f.lease, until_ms = exp}))
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
    local f = read(jkey, OUTCOME)
    if f.status == 'claimed' and f.lease == lease then
      if f.worker and f.worker ~= '' then hands[f.worker] = (hands[f.worker] or 0) + 1 end
      requeue(q, id, jkey, f.priority, 0, 0, hset_fields({'claimed_at', '', 'lease', '', 'worker', ''},
        history(jkey, f.hist, f.hn, now, 'released', {lease = lease})))
      n = n + 1
    end
  end
  release_hands(q, hands)
  if n > 0 then publish_ready(q) end
  return n
end

redis.register_function('starq_complete', complete)
redis.register_function('starq_fail', fail)
redis.register_function('starq_ack', ack)
redis.register_function('starq_extend', extend)
redis.register_function('starq_release', release)
