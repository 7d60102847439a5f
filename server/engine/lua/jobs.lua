-- Submitting and claiming: how jobs enter the queue and leave it for a worker.

-- submit: KEYS[1]=meta; ARGV = n, batch id ('' = no batch), its callback (JSON {payload (JSON text of an
-- object), priority, queue}; '' = none), the callback's job id, then per job: id, payload, priority, due_ms
-- (0 = now), payload hash ('' = none), options (JSON, see submit_one; '' = none). An option deps may name an
-- earlier job of the call as "#<index>" (0-based).
-- Returns a JSON array, per job [id, status, created_at (ms, text), skipped (boolean), and for a job cancelled
-- at once its error]: one string, which the server decodes in one step rather than a reply element at a time.
-- A job id that already exists is answered with the existing job (skipped), which makes a retried submit with
-- the same ids idempotent; so is a job whose unique key (or, on a dedupe queue, payload) another job holds. A
-- dependency that names no job of the queue fails the whole call, before anything is written: NODEP <job
-- index> <dependency index> <id>.
local HEAD = 4
local function submit(q, args)
  local n, bid = tonumber(args[1]), args[2]
  local opts = {}
  for i = 0, n - 1 do
    local raw = args[HEAD + i * 6 + 6]
    local o = raw ~= '' and cjson.decode(raw) or nil
    if o and o.deps then
      for j, dep in ipairs(o.deps) do
        if string.sub(dep, 1, 1) ~= '#' and redis.call('EXISTS', q.P .. 'job:' .. dep) == 0 then
          return redis.error_reply('NODEP ' .. i .. ' ' .. (j - 1) .. ' ' .. dep)
        end
      end
    end
    if bid ~= '' then
      o = o or {}
      o.bat = bid
    end
    opts[i + 1] = o
  end
  local now = now_ms()
  local added = new_added(q)
  local out = {}
  for i = 0, n - 1 do
    local b = HEAD + i * 6
    local o = opts[i + 1]
    if o and o.deps then
      for j, dep in ipairs(o.deps) do
        if string.sub(dep, 1, 1) == '#' then o.deps[j] = out[tonumber(string.sub(dep, 2)) + 1][1] end
      end
    end
    out[#out + 1] = submit_one(q, now, args[b + 1], args[b + 2], args[b + 3], tonumber(args[b + 4]), args[b + 5],
      o, added)
  end
  if bid ~= '' then
    -- The batch: its members are the jobs this call stored (a skipped one belongs to another submit).
    local total = 0
    for _, r in ipairs(out) do total = total + (r[4] and 0 or 1) end
    for _, id in ipairs(added.cancelled) do redis.call('HSET', q.P .. 'job:' .. id, 'bc', '1') end
    local b = {total = total, completed = 0, failed = 0, cancelled = #added.cancelled, cb = args[3],
      cbid = args[4]}
    redis.call('HSET', q.P .. 'batch:' .. bid, 'total', total, 'completed', 0, 'failed', 0, 'cancelled',
      b.cancelled, 'created_at', now, 'cb', b.cb, 'cbid', b.cbid)
    redis.call('ZADD', q.P .. 'batches', 'inf', bid)
    if b.cancelled >= total then finish_batch(q, bid, b, now, added) end
  end
  settle_added(q, added, now)
  return json_array(out)
end

-- A claim reads each job's whole record (HGETALL): a pending job holds few of RECORD's fields, and asking for
-- each of them by name (HMGET) cost a search of the record per name, found or not, and a reply element per name.
local function whole_record(jkey)
  local raw = redis.call('HGETALL', jkey)
  local rec = {}
  for i = 1, #raw, 2 do rec[raw[i]] = raw[i + 1] end
  return rec
end

-- How many jobs a claim may take now under the queue's limits, and, when the rate limit allows none, how long
-- until it allows some (ms). held: whether the queue's concurrency kept it from taking all it wanted.
local function allowance(q, want)
  local held = false
  if q.concurrency > 0 then
    local free = q.concurrency - redis.call('ZCARD', q.P .. 'leases')
    if free < want then
      want, held = math.max(free, 0), true
    end
  end
  if q.rate_max and want > 0 then
    local used = tonumber(redis.call('GET', q.P .. 'rl') or '0')
    if used >= q.rate_max then
      return 0, held, math.max(redis.call('PTTL', q.P .. 'rl'), 1)
    end
    want = math.min(want, q.rate_max - used)
  end
  return want, held, 0
end

-- A rate-limit window starts at the first hand-out after the previous one ended (as BullMQ's limiter does):
-- never windows aligned to the clock, which would let twice the limit through around a boundary.
local function spend_rate(q, n)
  if not q.rate_max or n == 0 then return end
  local rl = q.P .. 'rl'
  if redis.call('INCRBY', rl, n) == n then redis.call('PEXPIRE', rl, q.rate_per_ms) end
end

-- A worker's last claim time (the workers hash) is written at most once a second per worker: a worker claiming
-- one job at a time would otherwise write it at every claim. The times written are kept in this Lua state with
-- the queue's parsed settings (so they start afresh when the library is loaded again, or the queue is made
-- again); what a reader sees is at most a second older than the worker's last claim.
local SEEN_MS, SEEN_MAX = 1000, 1000
local function saw_worker(q, worker, now, now_s)
  local settings = getmetatable(q).__index
  local seen = settings.seen_at
  if not seen or settings.seen_n >= SEEN_MAX then
    seen = {} -- bounded by the workers in use, whatever names come and go
    settings.seen_at, settings.seen_n = seen, 0
  end
  local last = seen[worker]
  if last and now - last < SEEN_MS then return end
  if not last then settings.seen_n = settings.seen_n + 1 end
  seen[worker] = now
  redis.call('HSET', q.P .. 'workers', worker, now_s)
end

-- claim: KEYS[1]=meta; ARGV = count, lease token, worker name, park_ms (optional: how long the caller waits if
-- this claim hands out nothing; 0: it will not wait).
-- Hands out up to count pending jobs, highest priority first and FIFO within a priority, within the queue's
-- concurrency and rate limit. Due scheduled jobs are promoted first so a claim never waits for the maintenance
-- loop. Returns {wait_ms, held, records}: the records as json_array gives them; wait_ms > 0 when the rate
-- limit allows nothing now (it says when it will); held = 1 when the queue's concurrency held jobs back.
local function claim(q, args)
  local now = now_ms()
  if may_be_due(q, now) then promote_due(q, now, 100) end
  local park_ms = tonumber(args[4]) or 0
  if q.paused == '1' then
    mark_parked(q, now, park_ms)
    return {0, 0, '[]'}
  end
  local want, held, wait = allowance(q, tonumber(args[1]))
  local token, worker = args[2], args[3]
  local records, ids = {}, {}
  local default_exp = now + q.claim_timeout_ms
  local now_s, default_exp_s = text(now), text(default_exp)
  local leases = {}

  local function take(stream, n)
    -- The stream only ever holds claimable jobs, oldest first: its head is what to hand out. (A plain XRANGE
    -- rather than a consumer group read: the lease zset, not a group's PEL, tracks claims, and a group read
    -- would add a PEL entry to remove again and an XCLAIM per entry to the AOF.)
    local entries = redis.call('XRANGE', stream, '-', '+', 'COUNT', text(n))
    if #entries == 0 then return end
    -- The entries taken are the stream's head, so one trim below the id after the last of them removes them
    -- all (the nodes it covers whole at once; XDEL looked each entry up and marked it deleted).
    local ms, seq = string.match(entries[#entries][1], '^(%d+)-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. text(tonumber(seq) + 1))
    for _, entry in ipairs(entries) do
      local id = entry[2][2]
      local jkey = q.P .. 'job:' .. id
      local rec = whole_record(jkey)
      -- A job leaves its stream before its record goes, so the record always exists; should it not, the
      -- stale entry is dropped rather than resurrected as a half-record.
      if rec.id then
        local lease = token .. string.format('%x', #ids)
        local exp_s, deadline = default_exp_s, ''
        if rec.to then
          -- A timeout bounds the attempt: its lease never runs past the deadline, whatever is extended.
          deadline = now + tonumber(rec.to) * 1000
          exp_s = text(math.min(default_exp, deadline))
        end
        local set = {'status', 'claimed', 'claimed_at', now_s, 'lease', lease, 'lease_exp', exp_s, 'worker', worker}
        if deadline ~= '' then
          set[#set + 1] = 'dl'
          set[#set + 1] = deadline
        end
        -- The stale stream entry id stays: every way back to pending writes a new one.
        if rec.hn == '0' then
          redis.call('HSET', jkey, unpack(set))
        else
          hset(jkey, set, history(jkey, rec.hist, rec.hn, now, 'claimed',
            {lease = lease, worker = worker}))
        end
        rec.status, rec.claimed_at, rec.lease, rec.lease_exp, rec.worker = 'claimed', now_s, lease, exp_s, worker
        if q.events then emit(q, now, 'claimed', id, 'claimed', cjson.encode({worker = worker, lease_id = lease})) end
        records[#records + 1] = values_of(rec)
        ids[#ids + 1] = id
        leases[#leases + 1] = exp_s
        leases[#leases + 1] = id
      end
    end
  end

  for p = 9, 0, -1 do
    if #ids >= want then break end
    -- Streams of priorities the queue never had are empty: skipped, so a claim reads 1 stream, not 10.
    if string.find(q.prios, PRIORITY_TEXT[p], 1, true) then
      take(q.P .. 's:' .. PRIORITY_TEXT[p], want - #ids)
    end
  end
  if #ids > 0 then
    move_index_many(q.P, ids, 'pending', 'claimed')
    call_many('ZADD', q.P .. 'leases', {}, leases)
    spend_rate(q, #ids)
    if worker ~= '' then
      saw_worker(q, worker, now, now_s)
      redis.call('HINCRBY', q.P .. 'inhand', worker, text(#ids))
    end
  else
    mark_parked(q, now, park_ms)
  end
  return {wait, held and 1 or 0, json_array(records)}
end

register('starq_submit', submit)
register('starq_claim', claim)
