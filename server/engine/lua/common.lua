--[[
Starq's queue engine: every state transition of a job is one Redis function, run atomically by Redis.

The library is this file followed by the others of this folder, each in a block of its own (see library.py,
which also writes the constants at the top from the Python declarations: STATUSES, RECORD). This file holds
what they share.

Conventions shared by every function:
  KEYS[1]  the queue's meta hash, "starq:{<queue>}:meta". Every other key the function touches is derived
           from that key's prefix, so all of a queue's keys share one hash tag and one cluster slot. Job
           hashes are named after job ids that only the functions discover (a claim reads them from a
           stream), which is why the siblings are derived here rather than passed in KEYS.
  Time     comes from the Redis server (TIME), in milliseconds, so every API process agrees on "now".
  Errors   are returned as Redis errors whose first word is a stable code the engine maps to an exception:
           NOQUEUE, NOJOB, NOTCLAIMED, LEASE, CANCELLED, STATE, EXISTS, NOSCHEDULE, NODEP, NOBATCH.
  Fields   of records are read and written by name: read(key, FIELDS) gives a table keyed by field name.
  Register every function with register() or register_keyed() (below): they publish the events a call
           added, once per call; register() also loads the queue.
  Cost     each command run from Lua costs about as much as the Lua around it, so the functions that move
           many jobs (submit, claim, ack) do per job only what is keyed by the job (its hash, its stream
           entry) and update the shared keys (status indexes, leases, expiry, counters) once per call with
           every id in one command. A feature a job or queue does not use costs it nothing: its fields are
           absent and the code that serves it is skipped.

Keys of a queue (P = "starq:{<queue>}:"):
  P.."meta"          hash   settings, paused flag, created_at, deleting flag, prios (priorities ever used),
                            held_by_key (jobs waiting in their keys' lines)
  P.."s:<0-9>"       stream one per priority; holds exactly the claimable pending jobs (entry field "id")
  P.."job:<id>"      hash   the job record (RECORD's fields and the bookkeeping below); its field "hist" holds
                            the job's status history, newest last, one JSON object a line, capped at HISTORY_MAX
                            entries ("hn" counts them; "0" means the record's own fields stand for its history,
                            see history()). Keeping it in the record costs no command of its own.
  P.."idx:<status>"  zset   job ids by status, all scores 0, ordered by id (ids sort by creation time); for
                            every status but claimed, whose jobs are exactly those of P.."leases" (index_of)
  P.."tag:<tag>"     zset   job ids with that tag, ordered by id like idx:<status>
  P.."sched"         zset   scheduled job ids by due time
  P.."leases"        zset   claimed job ids by lease expiry
  P.."expiry"        zset   finished job ids by the time their record is removed
  P.."uniq"          hash   unique key -> the job holding it (a job's unique_key, or "d:<payload hash>")
  P.."uniq_until"    zset   unique key -> until when it is held (ms; +inf: until that job finishes)
  P.."kact"          hash   job key -> its active jobs (in a stream, claimed, or waiting out a retry)
  P.."kq:<key>"      list   jobs of that key waiting for a free slot (key_concurrency), in submission order
  P.."kwait"         set    job keys whose line (kq:<key>) is not empty
  P.."rl"            string the current rate-limit window's hand-outs (expires when the window ends)
  P.."crons"         zset   schedule names (score 0, by name); P.."cron:<name>" hash: the schedule
  P.."cron_due"      zset   active schedule names by next run (ms)
  P.."tput"          hash   ring of 5-second buckets of completed/failed counts (one hour)
  P.."workers"       hash   worker name -> last claim time
  P.."inhand"        hash   worker name -> jobs it holds now
  P.."dependents:<id>" hash dependent job id -> "1" while it waits on job <id>, "0" once settled
  P.."batch:<id>"    hash   a batch: total, completed, failed, cancelled, cb (its callback), cbid, cbq,
                            created_at, finished_at
  P.."batches"       zset   batch ids by when their hash is removed (+inf until the batch finishes)
  P.."outbox"        list   callback jobs bound for another queue (JSON), submitted by the maintenance loop
  P.."events"        stream the queue's event log (setting events), ids "0-<n>", capped near events_max

Record fields besides RECORD's: hist, hn (history); entry (its stream entry while claimable); done_lease,
done_as (the lease and the report that finished it, so a repeat is answered the same); dk (its payload hash,
on a dedupe queue); dl (the deadline of the current attempt, with a timeout); act ("1" while the job holds a
slot of its key); kw ("1" while it waits in its key's line); left (dependencies a waiting job still waits
for); hd ("1": other jobs depend on it); w ("1": a client waits for its outcome, so finishing publishes it);
bc ("1" once its batch counted its outcome).
]]

local GROUP = 'starq'
local BUCKET_MS = 5000
local BUCKETS = 720
local HISTORY_MAX = 50
-- Arguments per command when one command carries many ids: Lua's unpack() fails past ~8,000 values.
local CHUNK = 4000

-- Whole numbers as text. Lua turns a number into text with sprintf("%.14g") (also when it is passed to
-- redis.call), which costs as much as a small command; small ones come from this table made once, the others
-- from the cheaper "%d". The hot paths pass text, not numbers, to the store.
local INT = {}
for i = 0, 1023 do INT[i] = '' .. i end
local function text(n)
  return INT[n] or string.format('%d', n)
end

-- The priorities as text, and the streams' key suffixes, highest first (the order claims read them).
local PRIORITY_TEXT = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The events added by the running call, published once it returns (see register): the queue's name, or nil.
local EMITTED = nil
-- Whether the running call has told waiting claims that its queue has work (publish_ready): once is enough.
local READY_SENT = false

local function prefix_of(meta_key)
  return string.sub(meta_key, 1, #meta_key - 4)
end

-- The named fields of a hash as a table keyed by name (a missing field reads as false).
local function read(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do out[name] = values[i] end
  return out
end

-- A job record as the engine reads it: the values of RECORD's fields, in that order.
local function record_values(jkey)
  return redis.call('HMGET', jkey, unpack(RECORD))
end

-- The values of RECORD's fields from a table of them by name (a missing one reads as false, as HMGET's do).
local function values_of(rec)
  local out = {}
  for i, name in ipairs(RECORD) do out[i] = rec[name] or false end
  return out
end

-- Replies of many parts (the records of a claim or a listing, RECORD's values each; the outcomes of an ack) go
-- as one JSON array: the server decodes one string instead of parsing a reply element per value (for a claim
-- of 50 jobs, 1,300 elements through coredis' parser cost the server ~230 µs more CPU than one JSON text).
local function json_array(items)
  if #items == 0 then return '[]' end -- (cjson writes an empty table as {})
  return cjson.encode(items)
end

local function empty(value)
  return not value or value == ''
end

-- Runs cmd on key with a fixed head of arguments followed by many items, CHUNK items per command.
-- Items come in whole groups (score/member pairs), so CHUNK is even. key nil: the items are the keys (DEL).
local function call_many(cmd, key, head, items)
  local n = #items
  for i = 1, n, CHUNK do
    local last = math.min(i + CHUNK - 1, n)
    if key == nil then
      redis.call(cmd, unpack(items, i, last))
    elseif #head == 0 then
      redis.call(cmd, key, unpack(items, i, last))
    else
      local args = {unpack(head)}
      for j = i, last do args[#args + 1] = items[j] end
      redis.call(cmd, key, unpack(args))
    end
  end
end

-- Members with one score, as ZADD wants them: score, id, score, id, ... The score is made a string once
-- (Lua would format the number again for every member).
local function scored(ids, score)
  score = type(score) == 'number' and text(score) or score
  local out = {}
  for i, id in ipairs(ids) do
    out[2 * i - 1] = score
    out[2 * i] = id
  end
  return out
end

-- The zset holding the ids of a status's jobs. Claimed jobs are exactly those with a lease, so the leases zset
-- (by lease expiry, which the maintenance loop needs) is their index too: a claim and its outcome each update
-- one zset fewer than with an idx:claimed of their own. Its ids are not in id order: listing claimed jobs
-- sorts them (reads.lua), which costs O(claimed jobs), a number bounded by what workers hold at once.
-- (A store written by an earlier release may still hold an idx:claimed; the maintenance tick deletes it.)
local function index_of(P, status)
  if status == 'claimed' then return P .. 'leases' end
  return P .. 'idx:' .. status
end

-- Moves many job ids from one status index to another (from = nil: they had none). Leaving or entering the
-- claimed status is the caller's update of the leases zset (index_of), which carries their expiry.
local function move_index_many(P, ids, from, to)
  if #ids == 0 then return end
  if from and from ~= 'claimed' then
    call_many('ZREM', P .. 'idx:' .. from, {}, ids)
  end
  if to ~= 'claimed' then
    call_many('ZADD', P .. 'idx:' .. to, {}, scored(ids, 0))
  end
end

-- A queue's meta hash holds its settings, which change only through create_queue and update_queue (each bumps
-- the field v), and fields that change with the work (HOT). Parsing every setting at every call was a third of
-- what a submit cost the store, so the parsed settings are kept in this Lua state between calls, per queue, and
-- used while the queue's created_at and v are unchanged; each call reads only the hot fields.
local HOT = {'created_at', 'v', 'deleting', 'paused', 'prios', 'parked', 'sched_next', 'tput_b'}
local SETTINGS = {}
local SETTINGS_KEPT, SETTINGS_MAX = 0, 1000

-- The parsed settings of a queue from its meta hash (the queue exists), with each default filled in.
local function parse_settings(meta_key)
  local raw = redis.call('HGETALL', meta_key)
  -- A queue stored before a setting existed has that setting's default.
  local q = {}
  for name, value in pairs(DEFAULTS) do q[name] = value end
  for i = 1, #raw, 2 do
    q[raw[i]] = raw[i + 1]
  end
  q.P = prefix_of(meta_key)
  q.meta = meta_key
  q.name = string.sub(meta_key, 8, #meta_key - 6)
  q.events = q.events == '1'
  q.max_retries = tonumber(q.max_retries)
  q.claim_timeout_ms = tonumber(q.claim_timeout) * 1000
  q.retry_delay_ms = tonumber(q.retry_delay) * 1000
  q.retry_delay_max_ms = tonumber(q.retry_delay_max) * 1000
  q.retention_ms = tonumber(q.retention) * 1000
  q.concurrency = tonumber(q.concurrency)
  q.key_concurrency = tonumber(q.key_concurrency)
  if not empty(q.rate_limit) and q.rate_limit ~= 'null' then
    local limit = cjson.decode(q.rate_limit)
    q.rate_max, q.rate_per_ms = tonumber(limit.max), tonumber(limit.per_ms)
  end
  return q
end

-- Loads the queue, failing with NOQUEUE when it does not exist (or is being deleted). The table it returns
-- reads the settings through its metatable and holds the hot fields itself; a call may change its own copy of
-- any field (q.prios, q.key_concurrency ...) without touching what later calls see.
local function load_queue(meta_key)
  local hot = redis.call('HMGET', meta_key, unpack(HOT))
  if not hot[1] or hot[3] == '1' then
    return redis.error_reply('NOQUEUE queue not found')
  end
  local version = hot[1] .. ':' .. (hot[2] or '0')
  local kept = SETTINGS[meta_key]
  if not kept or kept.version ~= version then
    if SETTINGS_KEPT >= SETTINGS_MAX then
      SETTINGS, SETTINGS_KEPT = {}, 0 -- bounded by the queues in use, whatever names come and go
    end
    if not kept then SETTINGS_KEPT = SETTINGS_KEPT + 1 end
    kept = {version = version, meta = {__index = parse_settings(meta_key)}}
    SETTINGS[meta_key] = kept
  end
  local q = setmetatable({}, kept.meta)
  for i = 4, #HOT do q[HOT[i]] = hot[i] end
  return q
end

-- Registers fn(q, args), a function of one queue: q is the queue of KEYS[1] (see load_queue), and a call on a
-- queue that does not exist fails with NOQUEUE before fn runs. Most functions are of this kind; keyed: fn is
-- fn(keys, args) and loads what it needs itself (register_keyed). readonly: it writes nothing (FCALL_RO may run
-- it on a replica). The events the call added are published once it returns.
local function register(name, fn, readonly, keyed)
  local function run(keys, args)
    EMITTED = nil
    READY_SENT = false
    local reply
    if keyed then
      reply = fn(keys, args)
    else
      reply = load_queue(keys[1])
      if not reply.err then reply = fn(reply, args) end
    end
    if EMITTED then redis.call('PUBLISH', CHANNELS.events, EMITTED) end
    return reply
  end
  redis.register_function{function_name = name, callback = run, flags = readonly and {'no-writes'} or {}}
end

local function register_keyed(name, fn, readonly)
  register(name, fn, readonly, true)
end

-- The events a record in implicit history mode stands for (see history): its submission, then the claim
-- and the completion it records, if any.
local IMPLICIT = {'status', 'created_at', 'claimed_at', 'lease', 'worker', 'completed_at', 'done_lease'}
local function implicit_events(jkey)
  local r = read(jkey, IMPLICIT)
  local out = {cjson.encode({at = tonumber(r.created_at), event = 'submitted'})}
  if r.status == 'claimed' or r.status == 'completed' then
    out[#out + 1] = cjson.encode({at = tonumber(r.claimed_at), event = 'claimed', lease = r.lease, worker = r.worker})
  end
  if r.status == 'completed' then
    out[#out + 1] = cjson.encode({at = tonumber(r.completed_at), event = 'completed', lease = r.done_lease})
  end
  return out
end

-- The record fields that append one event to a job's history, to add to the HSET of the transition (which
-- must come after this call: an implicit history is read from the record as it was). hist and hn are the
-- history read with the record (false when it has none yet). Fields are event-specific (lease, worker,
-- error, status, run_at, until_ms).
--
-- Most jobs are submitted, claimed once and completed, and every event of that path is already in the
-- record (created_at; claimed_at, lease, worker; completed_at, done_lease). Such a record keeps hn = '0'
-- and no text ("implicit" mode): submit, claim and complete write no history at all while it is '0'. Any
-- other event first writes out the events the record stood for, then appends itself.
local function history(jkey, hist, hn, now, event, fields)
  local entry = fields or {}
  entry.at = now
  entry.event = event
  local line = cjson.encode(entry)
  local count = tonumber(hn) or 0
  if hn == '0' then
    local events = implicit_events(jkey)
    hist, count = table.concat(events, '\n'), #events
  end
  if not hist or hist == '' then
    return {'hist', line, 'hn', 1}
  end
  if count >= HISTORY_MAX then
    -- Full: the oldest event makes room (rare: only jobs retried or extended dozens of times).
    local cut = string.find(hist, '\n', 1, true)
    hist = cut and string.sub(hist, cut + 1) or ''
    count = HISTORY_MAX - 1
    if hist == '' then return {'hist', line, 'hn', 1} end
  end
  return {'hist', hist .. '\n' .. line, 'hn', count + 1}
end

-- Field/value lists joined into one, so a transition writes a record with one HSET. The first list is extended
-- in place (every caller builds it for this one write): no new table per job.
local function hset_fields(fields, ...)
  local n = #fields
  for i = 1, select('#', ...) do
    local part = select(i, ...)
    for j = 1, #part do fields[n + j] = part[j] end
    n = n + #part
  end
  return fields
end

local function hset(jkey, ...)
  redis.call('HSET', jkey, unpack(hset_fields(...)))
end

-- Wakes the claims parked on the queue, in any process, that may now find work. A claim parks only after a
-- claim of its own came back empty and marked the queue (meta field parked: until when a claim may wait, renewed
-- by every poll of the waiters; see mark_parked), so while no claim waits this costs one comparison and no
-- command: neither the store nor any server process handles a notification nobody needs.
-- It is published once per call (subscribers hear nothing before the call returns, so a second message would
-- say nothing new: a bulk action of 1,000 items sends one).
local function publish_ready(q, now)
  if READY_SENT or not q.parked or tonumber(q.parked) <= now then return end
  READY_SENT = true
  redis.call('PUBLISH', CHANNELS.ready, q.name)
end

-- A claim that handed out nothing and whose caller will park: the queue is marked as waited on for park_ms
-- (written at most every half of that, so steady polling of idle waiters does not write each time).
local function mark_parked(q, now, park_ms)
  if park_ms <= 0 then return end
  if not q.parked or tonumber(q.parked) < now + park_ms / 2 then
    q.parked = text(now + park_ms)
    redis.call('HSET', q.meta, 'parked', q.parked)
  end
end

-- Puts job id on the schedule, due at due (ms). The queue's meta field sched_next is a time no scheduled job is
-- due before ('' when none is scheduled; absent: unknown), so a claim skips the schedule while nothing is due.
-- Taking a job off the schedule leaves it early, which costs one look (promote_due then sets it right).
local function schedule(q, id, due)
  redis.call('ZADD', q.P .. 'sched', due, id)
  if empty(q.sched_next) or due < tonumber(q.sched_next) then
    q.sched_next = text(due)
    redis.call('HSET', q.meta, 'sched_next', q.sched_next)
  end
end

-- Whether a scheduled job may be due now (see schedule).
local function may_be_due(q, now)
  return q.sched_next == nil or q.sched_next == false or (q.sched_next ~= '' and tonumber(q.sched_next) <= now)
end

-- Appends one event to the queue's log when its setting events is on (else it costs one test). kind: what
-- happened; status: the job's status after it; extra: JSON text of an object of more fields, or nil. The
-- log's ids are "0-<n>", n counting the queue's events from 1, so a reader resuming after n can tell whether
-- the cap dropped events it never saw (the oldest left is past n + 1).
local function emit(q, now, kind, id, status, extra)
  if not q.events then return end
  local key = q.P .. 'events'
  if extra then
    redis.call('XADD', key, 'MAXLEN', '~', q.events_max, '0-*', 'e', kind, 'j', id, 's', status, 'at', now, 'd',
      extra)
  else
    redis.call('XADD', key, 'MAXLEN', '~', q.events_max, '0-*', 'e', kind, 'j', id, 's', status, 'at', now)
  end
  EMITTED = q.name
end

-- Appends a job to the stream of its priority: from here on it can be claimed. Returns the entry id.
local function add_to_stream(q, id, priority)
  return redis.call('XADD', q.P .. 's:' .. priority, '*', 'id', id)
end

------------------------------------------------------------------------------------------------------------
-- Unique keys: a job's unique_key, or on a dedupe queue the hash of its payload ("d:<hash>"), held until the
-- job finishes or, with unique_for, until that many seconds after it was submitted.

-- The unique key a record holds, from its fields uk and dk; nil when it holds none.
local function unique_of(f)
  if not empty(f.uk) then return f.uk end
  if not empty(f.dk) then return 'd:' .. f.dk end
  return nil
end

-- The job holding unique key uk now, or nil.
local function unique_holder(q, uk, now)
  local held = redis.call('ZSCORE', q.P .. 'uniq_until', uk)
  if not held or (held ~= 'inf' and tonumber(held) <= now) then return nil end
  return redis.call('HGET', q.P .. 'uniq', uk)
end

local function hold_unique(q, uk, id, until_ms)
  redis.call('HSET', q.P .. 'uniq', uk, id)
  redis.call('ZADD', q.P .. 'uniq_until', until_ms, uk)
end

-- A job that finished as status lets go of a unique key it holds until it finishes. A payload's dedupe key
-- stays with a completed job until its record goes (the queue still knows that payload): only a dead or
-- cancelled job lets it go. A key held for a time (unique_for) stays until that time.
local function free_unique(q, f, id, status)
  local uk = unique_of(f)
  if not uk or (status == 'completed' and empty(f.uk)) then return end
  if redis.call('HGET', q.P .. 'uniq', uk) == id and redis.call('ZSCORE', q.P .. 'uniq_until', uk) == 'inf' then
    redis.call('HDEL', q.P .. 'uniq', uk)
    redis.call('ZREM', q.P .. 'uniq_until', uk)
  end
end

------------------------------------------------------------------------------------------------------------
-- Job keys (key_concurrency): a job with a key enters its stream only while its key has fewer than
-- key_concurrency active jobs; otherwise it waits in its key's line, in submission order, and enters when an
-- active job of its key finishes. Other keys and keyless jobs flow past it: nothing blocks the streams' heads.

-- Makes a job claimable: into its stream, unless its key is at its limit (then into its key's line).
-- Returns the record fields to write ('entry' and 'act', or 'kw').
local function enqueue(q, id, priority, key)
  if empty(key) then
    return {'entry', add_to_stream(q, id, priority)}
  end
  local kact = q.P .. 'kact'
  if q.key_concurrency > 0 and tonumber(redis.call('HGET', kact, key) or '0') >= q.key_concurrency then
    redis.call('RPUSH', q.P .. 'kq:' .. key, id)
    redis.call('SADD', q.P .. 'kwait', key)
    redis.call('HINCRBY', q.meta, 'held_by_key', 1)
    return {'entry', '', 'kw', '1'}
  end
  redis.call('HINCRBY', kact, key, 1)
  return {'entry', add_to_stream(q, id, priority), 'act', '1', 'kw', ''}
end

-- Lets the next waiting jobs of key in while it is under its limit. Returns how many entered their stream.
local function admit_key(q, key)
  local line, kact = q.P .. 'kq:' .. key, q.P .. 'kact'
  local admitted = 0
  while q.key_concurrency == 0 or tonumber(redis.call('HGET', kact, key) or '0') < q.key_concurrency do
    local id = redis.call('LPOP', line)
    if not id then break end
    redis.call('HINCRBY', q.meta, 'held_by_key', -1)
    local jkey = q.P .. 'job:' .. id
    redis.call('HINCRBY', kact, key, 1)
    redis.call('HSET', jkey, 'entry', add_to_stream(q, id, redis.call('HGET', jkey, 'priority')), 'act', '1',
      'kw', '')
    admitted = admitted + 1
  end
  if redis.call('LLEN', line) == 0 then redis.call('SREM', q.P .. 'kwait', key) end
  return admitted
end

-- An active job of key is done (finished, or removed): its slot goes to the next job of its line.
-- Returns how many jobs entered their stream.
local function leave_key(q, key)
  local left = redis.call('HINCRBY', q.P .. 'kact', key, -1)
  if left <= 0 then redis.call('HDEL', q.P .. 'kact', key) end
  if redis.call('SISMEMBER', q.P .. 'kwait', key) == 1 then return admit_key(q, key) end
  return 0
end

-- Takes a job out of line: off its stream, its key's line or the schedule. f: its status, priority, entry,
-- key, act, kw.
local function unqueue(q, id, f)
  if f.status == 'pending' then
    if not empty(f.entry) then
      redis.call('XDEL', q.P .. 's:' .. f.priority, f.entry)
    elseif f.kw == '1' then
      redis.call('LREM', q.P .. 'kq:' .. f.key, 1, id)
      redis.call('HINCRBY', q.meta, 'held_by_key', -1)
      if redis.call('LLEN', q.P .. 'kq:' .. f.key) == 0 then redis.call('SREM', q.P .. 'kwait', f.key) end
    end
  elseif f.status == 'scheduled' then
    redis.call('ZREM', q.P .. 'sched', id)
  end
end

------------------------------------------------------------------------------------------------------------
-- Dependencies: a job that depends on others waits (status waiting) until every one of them has completed.
-- Each dependency lists its dependents in P.."dependents:<id>" ("1" while the dependent waits on it), and the
-- dependent counts the dependencies it still waits for (field left). When a dependency finishes, settle()
-- goes through its dependents in the same call (see settle_dependents).

-- Links job id to each of its dependencies deps (job ids of the queue; a repeated one counts once). run_anyway:
-- a dead or cancelled dependency counts as done. Returns how many it waits for, and the first dependency
-- that failed it (nil if none did) with that dependency's status.
local function link_dependencies(q, id, deps, run_anyway)
  local left, seen, failed, failed_status = 0, {}, nil, nil
  for _, dep in ipairs(deps) do
    if not seen[dep] then
      seen[dep] = true
      local status = redis.call('HGET', q.P .. 'job:' .. dep, 'status')
      local waits = status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled'
      if not waits and status ~= 'completed' and not run_anyway and not failed then
        failed, failed_status = dep, status
      end
      if waits then left = left + 1 end
      redis.call('HSET', q.P .. 'dependents:' .. dep, id, waits and '1' or '0')
      redis.call('HSET', q.P .. 'job:' .. dep, 'hd', '1')
    end
  end
  return left, failed, failed_status
end

-- Why a dependent was cancelled: its dependency dep ended as status.
local FAILED_AS = {failed = 'was dead-lettered', cancelled = 'was cancelled', removed = 'was removed'}
local function dependency_error(dep, status)
  return 'dependency ' .. dep .. ' ' .. FAILED_AS[status]
end

------------------------------------------------------------------------------------------------------------
-- Submitting one job (submit, a schedule's run, a batch's callback). opts: the job's options as the engine
-- sends them (a table, or nil): key, uk (unique key), uf (unique for, s), to (timeout, s), mr (max retries),
-- tags (a list), sch (the schedule that made it), deps (job ids it depends on, resolved), odf ("run": run
-- even if a dependency fails), bat (its batch). Returns {id, status, created_at (text), skipped (boolean)},
-- plus the error of a job cancelled at once by a failed dependency, and adds the job to the lists of new ids by
-- status in added.

local OPTION_FIELDS = {'key', 'uk', 'uf', 'to', 'mr', 'sch', 'odf', 'bat'}
-- The options of a job given none; only read.
local NO_OPTIONS = {}

local function submit_one(q, now, id, payload, priority, due, hash, opts, added)
  local jkey = q.P .. 'job:' .. id
  -- Kept although a new id never exists: a caller of the engine that resends a submit (the outbox of batch
  -- callbacks, draining again after a failure) sends the same ids, and must get the stored jobs back.
  if redis.call('EXISTS', jkey) == 1 then
    local f = read(jkey, {'status', 'created_at'})
    return {id, f.status, f.created_at, true}
  end
  local o = opts or NO_OPTIONS
  local dk = (q.dedupe == '1' and hash ~= '') and hash or nil
  local uk = o.uk or (dk and 'd:' .. dk) or nil
  if uk then
    local holder = unique_holder(q, uk, now)
    if holder then
      local f = read(q.P .. 'job:' .. holder, {'status', 'created_at'})
      if f.status then return {holder, f.status, f.created_at, true} end
    end
    hold_unique(q, uk, id, o.uf and (now + tonumber(o.uf) * 1000) or 'inf')
  end
  -- The call's time as text, made once for all its jobs.
  if added.now ~= now then added.now, added.now_s = now, text(now) end
  local now_s = added.now_s
  local fields = {'id', id, 'payload', payload, 'priority', priority, 'retries', '0', 'created_at', now_s}
  if opts then
    for _, name in ipairs(OPTION_FIELDS) do
      if o[name] ~= nil then
        fields[#fields + 1] = name
        fields[#fields + 1] = o[name]
      end
    end
    if o.tags then
      fields[#fields + 1] = 'tags'
      fields[#fields + 1] = cjson.encode(o.tags)
      for _, tag in ipairs(o.tags) do redis.call('ZADD', q.P .. 'tag:' .. tag, 0, id) end
    end
  end
  if dk then
    fields[#fields + 1] = 'dk'
    fields[#fields + 1] = dk
  end
  -- The priorities a queue's jobs have had: claims read only those streams.
  if not string.find(added.prios, priority, 1, true) then added.prios = added.prios .. priority end
  if o.deps then
    fields[#fields + 1] = 'deps'
    fields[#fields + 1] = cjson.encode(o.deps)
    local left, failed, failed_status = link_dependencies(q, id, o.deps, o.odf == 'run')
    if failed then
      -- A dependency already failed it: the job is stored as cancelled, saying why.
      local err = dependency_error(failed, failed_status)
      hset(jkey, fields, {'status', 'cancelled', 'completed_at', now, 'error', err},
        history(jkey, false, nil, now, 'cancelled', {error = err}))
      free_unique(q, {uk = o.uk, dk = dk}, id, 'cancelled')
      redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
      added.cancelled[#added.cancelled + 1] = id
      emit(q, now, 'submitted', id, 'cancelled', cjson.encode({error = err}))
      return {id, 'cancelled', now_s, false, err}
    end
    if left > 0 then
      hset(jkey, fields, {'status', 'waiting', 'left', left, 'run_at', due > now and due or ''},
        history(jkey, false, nil, now, 'submitted', {status = 'waiting'}))
      added.waiting[#added.waiting + 1] = id
      emit(q, now, 'submitted', id, 'waiting')
      return {id, 'waiting', now_s, false}
    end
  end
  if due > now then
    schedule(q, id, due)
    hset(jkey, fields, {'status', 'scheduled', 'run_at', due},
      history(jkey, false, nil, now, 'submitted', {run_at = due}))
    added.scheduled[#added.scheduled + 1] = id
    emit(q, now, 'submitted', id, 'scheduled')
    return {id, 'scheduled', now_s, false}
  end
  hset(jkey, fields, {'status', 'pending', 'hn', '0'}, enqueue(q, id, priority, o.key))
  added.pending[#added.pending + 1] = id
  emit(q, now, 'submitted', id, 'pending')
  return {id, 'pending', now_s, false}
end

local function new_added(q)
  return {pending = {}, scheduled = {}, waiting = {}, cancelled = {}, prios = q.prios}
end

-- The shared-key side of submit_one for a whole call.
local function settle_added(q, added, now)
  if added.prios ~= q.prios then
    redis.call('HSET', q.meta, 'prios', added.prios)
    q.prios = added.prios
  end
  move_index_many(q.P, added.pending, nil, 'pending')
  move_index_many(q.P, added.scheduled, nil, 'scheduled')
  move_index_many(q.P, added.waiting, nil, 'waiting')
  move_index_many(q.P, added.cancelled, nil, 'cancelled')
  if #added.pending > 0 then publish_ready(q, now) end
end

------------------------------------------------------------------------------------------------------------
-- Batches: jobs submitted together that, once every one has finished (completed, dead or cancelled), submit
-- one callback job, exactly once: the last outcome counted does it, in the same atomic call. A callback bound
-- for another queue (another cluster slot) goes through the queue's outbox, which the maintenance loop drains
-- into that queue under the job id chosen at submit, so a drain repeated after a crash submits it once.

local BATCH = {'total', 'completed', 'failed', 'cancelled', 'cb', 'cbid', 'finished_at'}

-- Submits a finished batch's callback (its definition cb: JSON {payload (JSON text), priority, queue}).
local function run_callback(q, bid, b, now, added)
  local summary = cjson.encode({id = bid, total = tonumber(b.total), completed = tonumber(b.completed),
    failed = tonumber(b.failed), cancelled = tonumber(b.cancelled)})
  local cb = cjson.decode(b.cb)
  -- The payload stays the text the engine sent (decoding it here would turn {} into [] and round numbers):
  -- "batch" goes in front of its fields.
  local payload = cb.payload == '{}' and '{"batch":' .. summary .. '}'
    or '{"batch":' .. summary .. ',' .. string.sub(cb.payload, 2)
  if empty(cb.queue) or cb.queue == q.name then
    submit_one(q, now, b.cbid, payload, tostring(cb.priority or 0), 0, '', nil, added)
  else
    redis.call('RPUSH', q.P .. 'outbox', cjson.encode({queue = cb.queue, id = b.cbid, payload = payload,
      priority = cb.priority or 0}))
  end
end

local function finish_batch(q, bid, b, now, added)
  redis.call('HSET', q.P .. 'batch:' .. bid, 'finished_at', now)
  redis.call('ZADD', q.P .. 'batches', now + q.retention_ms, bid)
  if not empty(b.cb) then run_callback(q, bid, b, now, added) end
end

-- Counts the outcome (completed, failed or cancelled) of job id in its batch bid, once per job: a job retried
-- by hand after it finished is not counted again.
local function count_in_batch(q, id, bid, status, now, added)
  local bkey = q.P .. 'batch:' .. bid
  local b = read(bkey, BATCH)
  if not b.total or redis.call('HSETNX', q.P .. 'job:' .. id, 'bc', '1') == 0 then return end
  b[status] = redis.call('HINCRBY', bkey, status, 1)
  local finished = tonumber(b.completed) + tonumber(b.failed) + tonumber(b.cancelled)
  if finished >= tonumber(b.total) and empty(b.finished_at) then finish_batch(q, bid, b, now, added) end
end

------------------------------------------------------------------------------------------------------------

local function count_outcome(q, now, kind, n)
  if n <= 0 then return end
  local bucket = math.floor(now / BUCKET_MS)
  local slot = bucket % BUCKETS
  local key = q.P .. 'tput'
  -- The meta field tput_b names the bucket whose slot was last reset: no read of the ring per outcome.
  local slot_text = text(slot)
  if q.tput_b ~= text(bucket) then
    q.tput_b = text(bucket)
    if redis.call('HGET', key, 't:' .. slot_text) ~= q.tput_b then
      redis.call('HSET', key, 't:' .. slot_text, q.tput_b, 'c:' .. slot_text, '0', 'f:' .. slot_text, '0')
    end
    redis.call('HSET', q.meta, 'tput_b', q.tput_b)
  end
  redis.call('HINCRBY', key, kind .. ':' .. slot_text, text(n))
end

-- Workers' jobs in hand go down by the counts in hands (worker name -> jobs let go).
local function release_hands(q, hands)
  for worker, n in pairs(hands) do
    if worker ~= '' then
      -- A worker's count stays at 0 between jobs rather than being deleted and made again at its next claim;
      -- the maintenance loop forgets it with the worker.
      if redis.call('HINCRBY', q.P .. 'inhand', worker, '-' .. text(n)) < 0 then
        redis.call('HDEL', q.P .. 'inhand', worker)
      end
    end
  end
end

-- The job fields that outcomes (fail, extend, release, lease expiry, cancel) read, history included.
local OUTCOME = {'status', 'lease', 'retries', 'priority', 'worker', 'done_lease', 'done_as', 'hist', 'hn', 'key',
  'act', 'uk', 'dk', 'mr', 'to', 'dl', 'entry', 'kw', 'w', 'hd', 'bat'}

-- Checks that the caller holds the job's current lease (f: the job's OUTCOME fields, or at least status,
-- lease, retries, done_lease and done_as). Returns nil when it does, or a reply to send back: the repeat of
-- an outcome already recorded under the same lease is answered as a success, not an error.
local function check_lease(id, f, lease, op)
  if not f.status then
    return redis.error_reply('NOJOB job not found')
  end
  if f.status ~= 'claimed' then
    if lease ~= '' and f.done_lease == lease and f.done_as == op then
      return {'repeat', f.status, tonumber(f.retries)}
    end
    if f.status == 'cancelled' then
      return redis.error_reply('CANCELLED job ' .. id .. ' was cancelled; stop working on it')
    end
    return redis.error_reply('NOTCLAIMED job ' .. id .. ' is ' .. f.status .. ', not claimed')
  end
  if lease ~= '' and lease ~= f.lease then
    return redis.error_reply('LEASE the lease ' .. lease .. ' on job ' .. id .. ' is no longer current')
  end
  return nil
end

-- A report on job id by the holder of lease (op: complete, fail, extend, release, progress): reads the job's
-- fields (names) and checks the lease. Returns the job's key, its fields, and check_lease's reply (nil: go on).
local function leased(q, id, lease, op, names)
  local jkey = q.P .. 'job:' .. id
  local f = read(jkey, names)
  return jkey, f, check_lease(id, f, lease, op)
end

-- The same for a function called by a worker on one job, ARGV starting with its id and lease: returns the id
-- too.
local function leased_call(q, args, op, names)
  return args[1], leased(q, args[1], args[2], op, names)
end

-- Moves due scheduled jobs to their streams (or their keys' lines). Returns how many moved.
local function promote_due(q, now, limit)
  local due = redis.call('ZRANGE', q.P .. 'sched', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  -- What is left on the schedule says when to look again (now, if the limit left due jobs behind).
  local next_due = now
  if #due < limit then
    local head = redis.call('ZRANGE', q.P .. 'sched', #due, #due, 'WITHSCORES')
    next_due = head[2] or ''
  end
  next_due = type(next_due) == 'number' and text(next_due) or next_due
  if next_due ~= q.sched_next then
    q.sched_next = next_due
    redis.call('HSET', q.meta, 'sched_next', q.sched_next)
  end
  if #due == 0 then return 0 end
  for _, id in ipairs(due) do
    local jkey = q.P .. 'job:' .. id
    local f = read(jkey, {'priority', 'key', 'act'})
    local fields
    if f.act == '1' then
      fields = {'entry', add_to_stream(q, id, f.priority)} -- a retry keeps the slot its key gave it
    else
      fields = enqueue(q, id, f.priority, f.key)
    end
    hset(jkey, {'status', 'pending', 'run_at', ''}, fields)
  end
  call_many('ZREM', q.P .. 'sched', {}, due)
  move_index_many(q.P, due, 'scheduled', 'pending')
  return #due
end

-- Puts one job that just left the claimed state back in line, now or after a delay, writing fields (the
-- caller's changes to the record) in the same HSET. An active job of a key keeps its key's slot (it stays
-- first of its key). Returns the job's new status.
local function requeue(q, id, jkey, priority, delay_ms, now, fields)
  redis.call('ZREM', q.P .. 'leases', id)
  if delay_ms > 0 then
    local due = now + delay_ms
    schedule(q, id, due)
    hset(jkey, {'status', 'scheduled', 'entry', '', 'run_at', due, 'lease_exp', '', 'dl', ''}, fields)
    move_index_many(q.P, {id}, 'claimed', 'scheduled')
    return 'scheduled'
  end
  local entry = add_to_stream(q, id, priority)
  hset(jkey, {'status', 'pending', 'entry', entry, 'run_at', '', 'lease_exp', '', 'dl', ''}, fields)
  move_index_many(q.P, {id}, 'claimed', 'pending')
  return 'pending'
end

-- The outcomes of many jobs, as one call. done collects what is updated once per call: ids completed, dead
-- and cancelled, jobs let go per worker, how many completed and failed attempts to count, and whether a
-- waiting claim may now find work (something became claimable, or a concurrency slot came free).
local function new_done(now)
  return {completed = {}, dead = {}, cancelled = {}, hands = {}, c = 0, f = 0, now_s = text(now), deps = {}}
end

local function let_go(done, worker)
  if worker and worker ~= '' then done.hands[worker] = (done.hands[worker] or 0) + 1 end
end

-- What every job that finishes as status (completed, failed or cancelled) lets go of, and who learns of it:
-- its unique key and its key's slot go; a client waiting for its outcome is told; its dependents (by
-- settle, through done.deps) and its batch count it.
local function finish_job(q, f, id, status, done)
  free_unique(q, f, id, status)
  if f.act == '1' then
    redis.call('HSET', q.P .. 'job:' .. id, 'act', '')
    if leave_key(q, f.key) > 0 then done.requeued = true end
  end
  if f.w == '1' then redis.call('PUBLISH', CHANNELS.done, q.name .. ' ' .. id) end
  if f.hd == '1' then done.deps[#done.deps + 1] = {id, status} end
  if not empty(f.bat) then
    done.added = done.added or new_added(q)
    count_in_batch(q, id, f.bat, status, tonumber(done.now_s), done.added)
  end
end

-- The fields of a waiting job that settle_dependents reads (finish_job's among them).
local WAITING = {'status', 'priority', 'key', 'run_at', 'odf', 'hist', 'hn', 'uk', 'dk', 'w', 'hd', 'bat'}

-- A waiting job whose last dependency completed becomes pending (scheduled, if its delay has not passed).
local function release_waiting(q, id, jkey, f, now, done)
  local due = tonumber(f.run_at)
  if due and due > now then
    schedule(q, id, due)
    hset(jkey, {'status', 'scheduled'}, history(jkey, f.hist, f.hn, now, 'pending', {status = 'scheduled'}))
    move_index_many(q.P, {id}, 'waiting', 'scheduled')
    emit(q, now, 'pending', id, 'scheduled')
    return
  end
  hset(jkey, {'status', 'pending', 'run_at', ''}, enqueue(q, id, f.priority, f.key),
    history(jkey, f.hist, f.hn, now, 'pending'))
  move_index_many(q.P, {id}, 'waiting', 'pending')
  done.requeued = true
  emit(q, now, 'pending', id, 'pending')
end

-- A waiting job whose dependency dep failed as status is cancelled, saying so (its own dependents follow).
local function cancel_waiting(q, id, jkey, f, dep, status, now, done)
  local err = dependency_error(dep, status)
  hset(jkey, {'status', 'cancelled', 'completed_at', now, 'run_at', '', 'error', err},
    history(jkey, f.hist, f.hn, now, 'cancelled', {error = err}))
  move_index_many(q.P, {id}, 'waiting', 'cancelled')
  redis.call('ZADD', q.P .. 'expiry', now + q.retention_ms, id)
  emit(q, now, 'cancelled', id, 'cancelled', cjson.encode({error = err}))
  finish_job(q, f, id, 'cancelled', done)
end

-- Tells the dependents of every job finished in this call (done.deps: {id, status}, growing as dependents
-- are cancelled in turn, so a failure goes down the whole graph in this one call). A dependency removed for
-- good (status "removed") counts as failed, and its list of dependents goes with it.
local function settle_dependents(q, done, now)
  local i = 1
  while i <= #done.deps do
    local dep, status = done.deps[i][1], done.deps[i][2]
    i = i + 1
    local dkey = q.P .. 'dependents:' .. dep
    local links = redis.call('HGETALL', dkey)
    for k = 1, #links, 2 do
      if links[k + 1] == '1' then
        local id = links[k]
        local jkey = q.P .. 'job:' .. id
        local f = read(jkey, WAITING)
        if status ~= 'removed' then redis.call('HSET', dkey, id, '0') end
        if f.status == 'waiting' then
          if status == 'completed' or f.odf == 'run' then
            if redis.call('HINCRBY', jkey, 'left', -1) <= 0 then release_waiting(q, id, jkey, f, now, done) end
          else
            cancel_waiting(q, id, jkey, f, dep, status, now, done)
          end
        end
      end
    end
    if status == 'removed' then redis.call('DEL', dkey) end
  end
end

-- Updates the shared keys for every outcome of one call. Finished jobs leave the lease zset (those that were
-- claimed) and their status index, and go onto the expiry zset that removes their records once the
-- retention passes.
local function settle(q, done, now)
  if #done.deps > 0 then settle_dependents(q, done, now) end
  local until_ms = now + q.retention_ms
  for status, ids in pairs({completed = done.completed, failed = done.dead}) do
    if #ids > 0 then
      call_many('ZREM', q.P .. 'leases', {}, ids)
      move_index_many(q.P, ids, 'claimed', status)
      call_many('ZADD', q.P .. 'expiry', {}, scored(ids, until_ms))
    end
  end
  release_hands(q, done.hands)
  count_outcome(q, now, 'c', done.c)
  count_outcome(q, now, 'f', done.f)
  if done.added then settle_added(q, done.added, now) end
  -- Claims held back by the queue's concurrency may go on now that claimed jobs are done.
  local freed = q.concurrency > 0 and (#done.completed + #done.dead + #done.cancelled) > 0
  if done.requeued or freed then publish_ready(q, now) end
end

-- A call for one job (complete, fail, cancel, promote, retry): one(q, now, done, ...) with a done of its own,
-- settled after. Returns one's reply.
local function settled(q, one, ...)
  local now = now_ms()
  local done = new_done(now)
  local reply = one(q, now, done, ...)
  settle(q, done, now)
  return reply
end

-- Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries spread out.
local function backoff_ms(q, attempt, jitter)
  if q.retry_delay_ms <= 0 then return 0 end
  local d = math.min(q.retry_delay_ms * 2 ^ (attempt - 1), q.retry_delay_max_ms)
  return math.floor(d / 2 + d / 2 * jitter)
end

-- The most attempts a job gets after its first: its own max_retries, else its queue's.
local function max_retries_of(q, f)
  return empty(f.mr) and q.max_retries or tonumber(f.mr)
end

-- A failed attempt (reported, or found by the maintenance loop: an expired lease or a timeout) of a claimed
-- job f: retried after a backoff (or after delay_ms, when given) while attempts remain and retry is asked,
-- else dead-lettered. outcome: the record fields to write either way; event: the history entry's name and
-- fields. Returns the job's new status and its retries.
local function failed_attempt(q, id, jkey, f, retry, jitter, now, done, outcome, event, fields, delay_ms)
  local retries = tonumber(f.retries)
  done.f = done.f + 1
  let_go(done, f.worker)
  if retry and retries < max_retries_of(q, f) then
    retries = retries + 1
    local told = cjson.encode({error = fields.error, retries = retries})
    local delay = delay_ms or backoff_ms(q, retries, jitter)
    local status = delay > 0 and 'scheduled' or 'pending'
    outcome[#outcome + 1] = 'retries'
    outcome[#outcome + 1] = retries
    fields.status = status
    requeue(q, id, jkey, f.priority, delay, now, hset_fields(outcome, history(jkey, f.hist, f.hn, now, event, fields)))
    done.requeued = done.requeued or status == 'pending'
    emit(q, now, event == 'expired' and 'expired' or 'retried', id, status, told)
    return status, retries
  end
  fields.status = 'failed'
  hset(jkey, outcome, {'status', 'failed', 'completed_at', now, 'lease_exp', '', 'dl', ''},
    history(jkey, f.hist, f.hn, now, event, fields))
  done.dead[#done.dead + 1] = id
  emit(q, now, event == 'expired' and 'expired' or 'failed', id, 'failed',
    cjson.encode({error = fields.error, retries = retries}))
  finish_job(q, f, id, 'failed', done)
  return 'failed', retries
end

------------------------------------------------------------------------------------------------------------
-- Removing a job for good (retention, purge, bulk delete), with every trace of it: its line position, lease,
-- key slot, unique key, tags, indexes, its list of dependents. f: the job's OUTCOME fields and its tags. Does
-- not touch idx:<status> or expiry (the caller removes many ids from those at once). A job removed before it
-- finished fails its waiting dependents (through done.deps, for settle) and counts as cancelled in its batch.
-- records: nil to delete the record at once, or a list to add its key to (the caller deletes them all with one
-- command, before it settles).

local FINISHED = {completed = true, failed = true, cancelled = true}

local function forget_job(q, id, f, done, records)
  unqueue(q, id, f)
  if f.status == 'claimed' then
    redis.call('ZREM', q.P .. 'leases', id)
    let_go(done, f.worker)
  end
  local uk = unique_of(f)
  if uk and redis.call('HGET', q.P .. 'uniq', uk) == id then
    redis.call('HDEL', q.P .. 'uniq', uk)
    redis.call('ZREM', q.P .. 'uniq_until', uk)
  end
  if f.act == '1' then leave_key(q, f.key) end
  if not empty(f.tags) then
    for _, tag in ipairs(cjson.decode(f.tags)) do redis.call('ZREM', q.P .. 'tag:' .. tag, id) end
  end
  local unfinished = not FINISHED[f.status]
  if f.hd == '1' then
    if unfinished then
      done.deps[#done.deps + 1] = {id, 'removed'}
    else
      redis.call('DEL', q.P .. 'dependents:' .. id)
    end
  end
  if unfinished and not empty(f.bat) then
    done.added = done.added or new_added(q)
    count_in_batch(q, id, f.bat, 'cancelled', tonumber(done.now_s), done.added)
  end
  if records then
    records[#records + 1] = q.P .. 'job:' .. id
  else
    redis.call('DEL', q.P .. 'job:' .. id)
  end
end

-- OUTCOME's fields and the tags: what forget_job reads.
local FORGET = {'tags'}
for i = 1, #OUTCOME do FORGET[#FORGET + 1] = OUTCOME[i] end
