-- Submitting and claiming: how jobs enter the queue and leave it for a worker.

-- submit: KEYS[1]=meta; ARGV = n, then per job: id, payload, priority, due_ms (0 = now), dedupe hash ('' = none).
-- Returns per job {id, status, created_at, skipped (0/1)}. A job id that already exists is answered with the
-- existing job (skipped), which makes a retried submit with the same ids idempotent.
local function submit(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  local n = tonumber(args[1])
  local out = {}
  local pending, scheduled = {}, {}
  local dedupe_on = q.dedupe == '1'
  local prios = q.prios
  local now_s = tostring(now)
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
      local f = read(q.P .. 'job:' .. existing, {'status', 'created_at'})
      out[#out + 1] = {existing, f.status, f.created_at, 1}
    else
      if not dedupe_on then hash = '' end
      -- Fields still empty (claimed_at, completed_at, error, ...) are left out: a record reads them as "".
      local fields = {'id', id, 'payload', payload, 'priority', priority, 'retries', '0', 'created_at', now_s}
      if hash ~= '' then
        fields[#fields + 1] = 'dedupe'
        fields[#fields + 1] = hash
      end
      if due > now then
        redis.call('ZADD', q.P .. 'sched', due, id)
        hset(jkey, fields, {'status', 'scheduled', 'run_at', due},
          history(jkey, false, nil, now, 'submitted', {run_at = due}))
        scheduled[#scheduled + 1] = id
        out[#out + 1] = {id, 'scheduled', now, 0}
      elseif hash == '' then
        -- The usual case, spelled out: no table to build and join.
        redis.call('HSET', jkey, 'id', id, 'payload', payload, 'priority', priority, 'retries', '0', 'created_at',
          now_s, 'status', 'pending', 'entry', add_to_stream(q, id, priority), 'hn', '0')
        pending[#pending + 1] = id
        out[#out + 1] = {id, 'pending', now, 0}
      else
        hset(jkey, fields, {'status', 'pending', 'entry', add_to_stream(q, id, priority), 'hn', '0'})
        pending[#pending + 1] = id
        out[#out + 1] = {id, 'pending', now, 0}
      end
      if hash ~= '' then
        redis.call('HSET', q.P .. 'dedupe', hash, id)
      end
      if not string.find(prios, priority, 1, true) then prios = prios .. priority end
    end
  end
  if prios ~= q.prios then redis.call('HSET', keys[1], 'prios', prios) end
  move_index_many(q.P, pending, nil, 'pending')
  move_index_many(q.P, scheduled, nil, 'scheduled')
  if #pending > 0 then publish_ready(q) end
  return out
end

-- What a claim reads of each job: the record's fields except those the claim itself sets, and hn.
local CLAIM_SETS = {status = true, claimed_at = true, lease = true, lease_exp = true, worker = true}
local CLAIM_READS = {'hn'}
-- (At load time the library sees no Lua globals such as ipairs: plain loops only.)
for i = 1, #RECORD do
  if not CLAIM_SETS[RECORD[i]] then CLAIM_READS[#CLAIM_READS + 1] = RECORD[i] end
end

-- claim: KEYS[1]=meta; ARGV = count, lease token, worker name.
-- Hands out up to count pending jobs, highest priority first and FIFO within a priority. Due scheduled jobs
-- are promoted first so a claim never waits for the maintenance loop. Returns a list of job records (the
-- values of RECORD's fields, in that order).
local function claim(keys, args)
  local q = load_queue(keys[1])
  if q.err then return q end
  local now = now_ms()
  promote_due(q, now, 100)
  if q.paused == '1' then return {} end
  local want, token, worker = tonumber(args[1]), args[2], args[3]
  local out, ids = {}, {}
  local lease_exp = now + q.claim_timeout_ms
  local now_s, lease_exp_s = tostring(now), tostring(lease_exp)

  local function take(stream, n)
    -- The stream only ever holds pending jobs, oldest first: its head is what to hand out. (A plain XRANGE
    -- rather than a consumer group read: the lease zset, not a group's PEL, tracks claims, and a group read
    -- would add a PEL entry to remove again and an XCLAIM per entry to the AOF.)
    local entries = redis.call('XRANGE', stream, '-', '+', 'COUNT', n)
    if #entries == 0 then return end
    local entry_ids = {}
    for i, entry in ipairs(entries) do entry_ids[i] = entry[1] end
    call_many('XDEL', stream, {}, entry_ids)
    for _, entry in ipairs(entries) do
      local id = entry[2][2]
      local jkey = q.P .. 'job:' .. id
      local rec = read(jkey, CLAIM_READS)
      -- A job leaves its stream before its record goes, so the record always exists; should it not, the
      -- stale entry is dropped rather than resurrected as a half-record.
      if rec.id then
        local lease = token .. string.format('%x', #out)
        -- The stale stream entry id stays: every way back to pending writes a new one.
        if rec.hn == '0' then
          redis.call('HSET', jkey, 'status', 'claimed', 'claimed_at', now_s, 'lease', lease, 'lease_exp',
            lease_exp_s, 'worker', worker)
        else
          hset(jkey, {'status', 'claimed', 'claimed_at', now_s, 'lease', lease, 'lease_exp', lease_exp_s,
            'worker', worker},
            history(jkey, redis.call('HGET', jkey, 'hist'), rec.hn, now, 'claimed', {lease = lease, worker = worker}))
        end
        rec.status, rec.claimed_at, rec.lease, rec.lease_exp, rec.worker = 'claimed', now_s, lease, lease_exp_s,
          worker
        local values = {}
        for i, name in ipairs(RECORD) do values[i] = rec[name] end
        out[#out + 1] = values
        ids[#ids + 1] = id
      end
    end
  end

  for p = 9, 0, -1 do
    if #out >= want then break end
    -- Streams of priorities the queue never had are empty: skipped, so a claim reads 1 stream, not 10.
    if string.find(q.prios, tostring(p), 1, true) then
      take(q.P .. 's:' .. p, want - #out)
    end
  end
  if #ids > 0 then
    move_index_many(q.P, ids, 'pending', 'claimed')
    call_many('ZADD', q.P .. 'leases', {}, scored(ids, lease_exp_s))
    if worker ~= '' then
      redis.call('HSET', q.P .. 'workers', worker, now_s)
      redis.call('HINCRBY', q.P .. 'inhand', worker, #ids)
    end
  end
  return out
end

redis.register_function('starq_submit', submit)
redis.register_function('starq_claim', claim)
