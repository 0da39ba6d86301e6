"""The Lua scripts of the Redis store: each runs atomically in Redis, so a batch of writes, a
claim of a dead process's work or a bucket's refill is all or nothing, in one round trip.

Key layout, under the configured prefix P (all readable with redis-cli; on a Redis Cluster
keys.py adds the hash tags: a message's keys in its partition, the processes' shared ones in
one slot of their own):
  P m:<id>        hash   a message (codec.py): `d`, the columns fixed at submit (JSON list);
                         `state`; `s`, the others its sending changes (JSON list); `pid`, its
                         "<provider>:<provider id>"; `r`, its receipt ("1" while owed, then
                         JSON [receipt, receipt_at, receipt_to]); each left out while at its
                         default; `node`: the process that owns it, the only one whose writes
                         to it count
  P ev:<id>       list   the message's trail events (JSON), oldest first
  P open:<node>   set    ids of the unfinished messages a process owns (what a taker-over takes)
  P pid:<provider>:<provider id>   string  our id, while the message waits for its final status
  P early:<provider>:<provider id> string  a report that came before its send answer (2 minutes)
  P done          zset   final messages by done time (retention; passed over while their
                         receipt is owed)
  P rx:<account>  stream deliver_sm waiting for a receiver of the account (group "gw"): one
                         field `d`, a JSON list: key, message_id, on_row, state, the rest
                         (codec.py)
  P rxs           set    accounts that have such a stream
  P owed:<node>   set    ids of final receipts a process's receivers took at their commit, with
                         no stream entry: the process has the record (a taker-over, or the
                         process itself after a restart, rebuilds it from the message and adds
                         it to the stream)
  P rk:<key>      string an intermediate receipt or MO already added (a retried batch adds it once)
  P nodes         set    processes that own work; P node:<node> their heartbeat (expires)
  P claims        hash   a dead process -> the process taking its work over (while it does)
  P inbox:<node>  stream reports forwarded to the process that owns their message (group "gw")
  P binds:<account> hash bound sessions of the account in every process -> their process
  P tb:<name>     hash   a token bucket shared by every process
  P slots:<name>  hash   a provider's request slots each process holds
  P ids           string the message-id counter
"""

from __future__ import annotations

from typing import Any

_DROP_ENTRY = """
local function drop_entry(P, stream, e, why, now, dropped, account)
  local f = e[2]
  redis.call('XACK', stream, 'gw', e[1])
  redis.call('XDEL', stream, e[1])
  local mid, on_row, state
  if f[1] == 'd' then  -- key, message_id, on_row, state lead the entry's list (codec.entry_blob)
    local h = cjson.decode(f[2])
    mid, on_row, state = h[2], tostring(h[3]), tostring(h[4])
  else  -- an entry of the layout before: the head as fields of their own
    mid, on_row, state = f[4], f[6], f[8]
  end
  if on_row == '1' then
    local key = P .. 'm:' .. mid
    if redis.call('EXISTS', key) == 1 then  -- (in the done set since its final state)
      redis.call('HSET', key, 'r', '[4,' .. now .. ',' .. cjson.encode(why) .. ']')
    end
  end
  dropped[#dropped + 1] = account
  dropped[#dropped + 1] = mid
  dropped[#dropped + 1] = state
  dropped[#dropped + 1] = why
end
"""

# ARGV: prefix, node, now, max_per_account, pid_ttl_ms, ops (JSON), trail ttl ms, and the
# deliver_sm this process's receivers take now (JSON {account: how many}, or ''). Returns
# {fenced ids, early reports (JSON), dropped receipts as (account, message_id, state, why)
# quadruples, deliver_sm taken as (account, entry id, what) triples}: `what` is the place of the
# add op among the batch's adds when it is one the batch added (the process has its record; its
# entry id is '' when it took it without a stream entry; the place is negative when there was no
# room for it but the op came without its entry: owed here all the same, for the process to give
# back, REQUEUE), else the entry's fields (one waiting before it).
#
# Redis's cost is per command, per field and per value that crosses into Lua (and, with AOF, per
# byte written), so a message costs one hash write at submit, one write (3 fields) at its final
# state, and one hash write (1) when its receipt is settled; what many messages of the batch
# share is one variadic command each (the open set read and written, the done and owed sets,
# acks and deletes of stream entries, the streams' length checks).
# Ownership is the hash's `node` field. An unfinished message is in the `open:` set of its owner
# and of no other (the insert, CLAIM and the final state keep the two together), so one
# SMISMEMBER for the batch tells which final states are ours to write: not one that another
# process took over, nor one already final (a batch applied again owes no second receipt; only
# then is `node` read, to tell the two apart). An update before the final state reads `node`
# with the old pid (a new pid is indexed).
# A receipt for a receiver of this process goes to it here and now, what waited in the account's
# stream first (XREADGROUP as its blocking read would, so it is pending for this process like any
# it read). A final receipt the room still has place for gets no stream entry at all: its id goes
# to `owed:<node>` (its message's `r` says it is owed), the process hands the record it has to
# its outbox, and the settle takes the id off. The process sends such a receipt without its
# entry (the biggest part of the ops) when it expects room for it; finding none, it is owed here
# all the same, for the process to give back. Only what the process gives back, or leaves behind
# when it dies, goes to the stream (REQUEUE). Should the answer be lost, the batch applied again
# adds nothing: a final receipt already in `owed:<node>` is taken again (or, without room now,
# goes to the stream, or back to the process); what the first application read from the stream
# is pending here untouched, and adopted by a reader once idle for claim_after.
COMMIT = (
    _DROP_ENTRY
    + """
local P, me, now = ARGV[1], ARGV[2], ARGV[3]
local maxper, pidttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local ops = cjson.decode(ARGV[6])
local trailttl = tonumber(ARGV[7])
local fenced, early, dropped, newly_owed, taken = {}, {}, {}, {}, {}
local opened, closed, done, unpid = {}, {}, {}, {}
local acks, added, ours, nadd = {}, {}, {}, 0
local owedkey, owe, unowe, left = P .. 'owed:' .. me, {}, {}, {}

local function ack(stream, entry)
  local t = acks[stream]
  if not t then t = {}; acks[stream] = t end
  t[#t + 1] = entry
end

local function each(head, list, step)  -- one variadic command per 1,000 items (of `step` args)
  local n = 1000 * step
  for i = 1, #list, n do
    local args = {unpack(head)}
    for j = i, math.min(#list, i + n - 1) do args[#args + 1] = list[j] end
    redis.call(unpack(args))
  end
end

local function take(account, entry, what)
  taken[#taken + 1] = account
  taken[#taken + 1] = entry
  taken[#taken + 1] = what
end

local function read(account, room)  -- (pcall: a group Redis lost is the feed's to make again)
  local stream = P .. 'rx:' .. account
  local got = redis.pcall('XREADGROUP', 'GROUP', 'gw', me, 'COUNT', room, 'STREAMS', stream, '>')
  local n = 0
  if type(got) == 'table' and got[1] then
    for _, e in ipairs(got[1][2]) do
      take(account, e[1], ours[e[1]] or e[2])
      n = n + 1
    end
  end
  return n
end

if ARGV[8] ~= '' then  -- the room of this process's receivers: what waited goes first
  for account, room in pairs(cjson.decode(ARGV[8])) do
    if redis.call('EXISTS', P .. 'rx:' .. account) == 1 then room = room - read(account, room) end
    left[account] = room
  end
end

-- the messages of the final states that are open here (ours, and not final yet), in one read
local open = {}
do
  local ids = {}
  for _, op in ipairs(ops) do
    if op[1] == 'U' and tonumber(op[3]) >= 2 then ids[#ids + 1] = op[2] end
  end
  for i = 1, #ids, 1000 do
    local some = {unpack(ids, i, math.min(#ids, i + 999))}
    for j, yes in ipairs(redis.call('SMISMEMBER', P .. 'open:' .. me, unpack(some))) do
      if yes == 1 then open[some[j]] = true end
    end
  end
end

for _, op in ipairs(ops) do
  local kind = op[1]
  if kind == 'I' then
    local id = op[2]
    redis.call('HSET', P .. 'm:' .. id, 'node', me, unpack(op[4]))
    if tonumber(op[3]) < 2 then opened[#opened + 1] = id end
  elseif kind == 'U' and tonumber(op[3]) >= 2 then  -- final: id, state, pid, s, receipt, done_at
    local id = op[2]
    local key = P .. 'm:' .. id
    if not open[id] then  -- another process's now, or final already (this batch applied again)
      if redis.call('HGET', key, 'node') ~= me then fenced[#fenced + 1] = id end
    else
      if op[6] == '1' then
        newly_owed[id] = true
        redis.call('HSET', key, 'state', op[3], 's', op[5], 'r', '1')
      else
        redis.call('HSET', key, 'state', op[3], 's', op[5])
      end
      closed[#closed + 1] = id
      if op[4] ~= '' then unpid[#unpid + 1] = P .. 'pid:' .. op[4] end
      local done_at = op[7]
      if done_at == '' then done_at = now end
      done[#done + 1] = done_at  -- (retention passes over it while its receipt is owed)
      done[#done + 1] = id
    end
  elseif kind == 'U' then  -- id, state, pid, s
    local id = op[2]
    local key = P .. 'm:' .. id
    local old = redis.call('HMGET', key, 'node', 'pid')
    if old[1] ~= me then
      fenced[#fenced + 1] = id
    else
      local pid = op[4]
      if pid ~= (old[2] or '') then
        redis.call('HSET', key, 'state', op[3], 's', op[5], 'pid', pid)
        if pid ~= '' then
          redis.call('SET', P .. 'pid:' .. pid, id, 'PX', pidttl)
          local e = redis.call('GETDEL', P .. 'early:' .. pid)
          if e then early[#early + 1] = e end
        end
      else
        redis.call('HSET', key, 'state', op[3], 's', op[5])
      end
    end
  elseif kind == 'R' then
    local id = op[2]
    local key = P .. 'm:' .. id
    if redis.call('HGET', key, 'node') ~= me then
      fenced[#fenced + 1] = id
    else
      redis.call('HSET', key, 'd', op[3])
    end
  elseif kind == 'A' or kind == 'a' then  -- account, message id (A) or key (a), entry
    local account, add = op[2], false
    nadd = nadd + 1
    if kind == 'A' then  -- a final receipt: with its message's final state, once
      local id, room = op[3], left[account] or 0
      local again = not newly_owed[id] and redis.call('SISMEMBER', owedkey, id) == 1
      if newly_owed[id] or again then
        if room > 0 then  -- to this process's receiver, without a stream entry
          left[account] = room - 1
          if not again then owe[#owe + 1] = id end
          take(account, '', nadd)
        elseif op[4] == '' then  -- sent without its entry (the process has it): for it to give back
          if not again then owe[#owe + 1] = id end
          take(account, '', -nadd)
        else
          if again then redis.call('SREM', owedkey, id) end
          add = true
        end
      end
    else  -- an intermediate receipt or MO: once by its key
      add = redis.call('SET', P .. 'rk:' .. op[3], '1', 'NX', 'PX', 86400000)
    end
    if add then
      ours[redis.call('XADD', P .. 'rx:' .. account, '*', 'd', op[4])] = nadd
      added[account] = true
    end
  elseif kind == 'X' then
    ack(P .. 'rx:' .. op[2], op[3])
  elseif kind == 'D' then  -- id, r, account, entry ('' if none: owed here, or not known)
    local key = P .. 'm:' .. op[2]
    -- one write, no read: a message with a receipt owed has its `r` (and is not purged while it
    -- is owed), so a new field means it was gone (or of the layout before, with `receipt`)
    if redis.call('HSET', key, 'r', op[3]) == 1 and redis.call('HEXISTS', key, 'node') == 0 then
      redis.call('DEL', key)
    end
    if op[5] ~= '' then ack(P .. 'rx:' .. op[4], op[5]) else unowe[#unowe + 1] = op[2] end
  elseif kind == 'E' then
    local key = P .. 'ev:' .. op[2]
    redis.call('RPUSH', key, op[3])
    redis.call('PEXPIRE', key, trailttl)  -- retention removes it with its message; this, if not
  end
end

local openkey = P .. 'open:' .. me
each({'SADD', openkey}, opened, 1)
each({'SREM', openkey}, closed, 1)
each({'ZADD', P .. 'done'}, done, 2)
each({'DEL'}, unpid, 1)
each({'SADD', owedkey}, owe, 1)
each({'SREM', owedkey}, unowe, 1)
for stream, entries in pairs(acks) do
  each({'XACK', stream, 'gw'}, entries, 1)
  each({'XDEL', stream}, entries, 1)
end
for account in pairs(added) do
  local stream = P .. 'rx:' .. account
  if redis.call('SADD', P .. 'rxs', account) == 1 then
    redis.pcall('XGROUP', 'CREATE', stream, 'gw', '0', 'MKSTREAM')
  end
  local n = redis.call('XLEN', stream)
  if n > maxper then
    for _, e in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', n - maxper)) do
      drop_entry(P, stream, e, 'overflow', now, dropped, account)
    end
  end
  local room = left[account]
  if room and room > 0 then read(account, room) end
end
return {fenced, early, dropped, taken}
"""
)

# ARGV: prefix, node, provider, provider id, our id or '', report (JSON), early ttl ms.
ROUTE = """
local P, me, provider, pid, mid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local id = false
if pid ~= '' then id = redis.call('GET', P .. 'pid:' .. provider .. ':' .. pid) end
if not id and mid ~= '' then
  local h = redis.call('HMGET', P .. 'm:' .. mid, 'state', 's', 'provider')
  local by = h[3]  -- (a hash of the layout before `s`)
  if h[2] then by = cjson.decode(h[2])[1] end
  if by == provider and tonumber(h[1] or '0') < 2 then id = mid end
end
if not id then
  if pid ~= '' then
    redis.call('SET', P .. 'early:' .. provider .. ':' .. pid, ARGV[6], 'PX', tonumber(ARGV[7]))
  end
  return 'early'
end
local owner = redis.call('HGET', P .. 'm:' .. id, 'node')
if not owner then return 'gone' end
if owner == me then return 'mine' end
redis.call('XADD', P .. 'inbox:' .. owner, '*', 't', 'report', 'p', provider, 'r', ARGV[6])
return 'sent'
"""

# ARGV: prefix, node, token, ttl ms. 1 renewed; 2 lapsed but nobody took our work: renewed;
# 0 another process took our work (we were taken for dead); 3 another process is taking it;
# -1 another process holds our name.
HEARTBEAT = """
local P, me, token, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HEXISTS', P .. 'claims', me) == 1 then return 3 end
local key = P .. 'node:' .. me
local cur = redis.call('GET', key)
if cur == token then
  redis.call('PEXPIRE', key, ttl)
  return 1
end
if cur then return -1 end
if redis.call('SISMEMBER', P .. 'nodes', me) == 1 then
  redis.call('SET', key, token, 'PX', ttl)
  return 2
end
return 0
"""

# Taking over a dead process's work goes partition by partition (on a cluster they are on
# several shards): CLAIM_BEGIN, in the shared slot, takes the dead process off `nodes` and notes
# the claim in `claims` (dead -> claimer), so that only one process claims it and the dead one,
# should it come back, waits (HEARTBEAT answers 3) until CLAIM_END; CLAIM in each partition
# moves its unfinished messages and forwarded reports. A claimer that dies midway leaves its
# note, and another process takes the claim over.

# ARGV: shared prefix, node (the claimer), dead node. 1: claim it now; 0: not (yet) dead, or
# another live process is claiming it.
CLAIM_BEGIN = """
local P, me, dead = ARGV[1], ARGV[2], ARGV[3]
if dead == me or redis.call('EXISTS', P .. 'node:' .. dead) == 1 then return 0 end
local by = redis.call('HGET', P .. 'claims', dead)
if by then
  if by ~= me and redis.call('EXISTS', P .. 'node:' .. by) == 1 then return 0 end
elseif redis.call('SREM', P .. 'nodes', dead) == 0 then
  return 0
end
redis.call('HSET', P .. 'claims', dead, me)
return 1
"""

# ARGV: shared prefix, dead node, node (the claimer).
CLAIM_END = """
if redis.call('HGET', ARGV[1] .. 'claims', ARGV[2]) == ARGV[3] then
  redis.call('HDEL', ARGV[1] .. 'claims', ARGV[2])
end
return 1
"""

# ARGV: partition prefix, node (the claimer), dead node. Returns {the ids of the unfinished
# messages now ours, the ids of the final receipts it owed without a stream entry, now in our
# `owed:` set (the claimer adds them to the stream, REQUEUE)}.
CLAIM = """
local P, me, dead = ARGV[1], ARGV[2], ARGV[3]
local ids = redis.call('SMEMBERS', P .. 'open:' .. dead)
local mine = P .. 'open:' .. me
for _, id in ipairs(ids) do
  redis.call('HSET', P .. 'm:' .. id, 'node', me)
  redis.call('SADD', mine, id)
end
redis.call('DEL', P .. 'open:' .. dead)
local owed = redis.call('SMEMBERS', P .. 'owed:' .. dead)
if #owed > 0 then
  redis.call('SUNIONSTORE', P .. 'owed:' .. me, P .. 'owed:' .. me, P .. 'owed:' .. dead)
  redis.call('DEL', P .. 'owed:' .. dead)
end
local inbox = P .. 'inbox:' .. dead
for _, e in ipairs(redis.call('XRANGE', inbox, '-', '+')) do
  if e[2][2] == 'report' then redis.call('XADD', P .. 'inbox:' .. me, '*', unpack(e[2])) end
end
redis.call('DEL', inbox)
return {ids, owed}
"""

# ARGV: partition prefix, node, then (message id, account, entry or '') triples: final receipts
# this process owes without a stream entry (COMMIT) that it gives back, took over, or left before
# a restart. Each that is still owed here and by its message goes to the account's stream (as a
# new entry, for any process's reader); one without an entry (its message is gone) is only
# forgotten. Returns how many were added.
REQUEUE = """
local P, me = ARGV[1], ARGV[2]
local owed, n = P .. 'owed:' .. me, 0
for i = 3, #ARGV, 3 do
  local id, account, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('SREM', owed, id) == 1 and entry ~= '' then
    local r = redis.call('HMGET', P .. 'm:' .. id, 'r', 'receipt')  -- (`receipt`: the layout before)
    if r[1] == '1' or (not r[1] and r[2] == '1') then
      local stream = P .. 'rx:' .. account
      if redis.call('SADD', P .. 'rxs', account) == 1 then
        redis.pcall('XGROUP', 'CREATE', stream, 'gw', '0', 'MKSTREAM')
      end
      redis.call('XADD', stream, '*', 'd', entry)
      n = n + 1
    end
  end
end
return n
"""

# ARGV: prefix, account, member, limit, node. 1 counted; 0 the account is at its limit. Binds of
# processes whose heartbeat is gone no longer count.
BIND = """
local P, account, member, limit, me = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = P .. 'binds:' .. account
local all = redis.call('HGETALL', key)
local count, alive = 0, {}
for i = 1, #all, 2 do
  local node = all[i + 1]
  local ok = alive[node]
  if ok == nil then
    ok = node == me or redis.call('EXISTS', P .. 'node:' .. node) == 1
    alive[node] = ok
  end
  if ok then count = count + 1 else redis.call('HDEL', key, all[i]) end
end
if count >= limit then return 0 end
redis.call('HSET', key, member, me)
return 1
"""

# ARGV: prefix, name, rate (tokens/s), burst, wanted. Returns {granted, ms until the next token}.
BUCKET = """
local key = ARGV[1] .. 'tb:' .. ARGV[2]
local rate, burst, want = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', key, 'tokens', 'ts')
local tokens, ts = tonumber(h[1]), tonumber(h[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local got = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - got
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 60000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) / rate * 1000) end
return {got, wait}
"""

# ARGV: prefix, name, limit, wanted (> 0 take, < 0 give back), node. Returns slots granted.
SLOTS = """
local P, name, limit, want, me = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local key = P .. 'slots:' .. name
if want < 0 then
  if redis.call('HINCRBY', key, me, want) <= 0 then redis.call('HDEL', key, me) end
  return 0
end
local all = redis.call('HGETALL', key)
local used = 0
for i = 1, #all, 2 do
  local node = all[i]
  if node ~= me and redis.call('EXISTS', P .. 'node:' .. node) == 0 then
    redis.call('HDEL', key, node)
  else
    used = used + tonumber(all[i + 1])
  end
end
local got = math.max(0, math.min(want, limit - used))
if got > 0 then redis.call('HINCRBY', key, me, got) end
return got
"""

# KEYS: the stream. ARGV: node, entry ids. Entries still pending for this process go back to
# the stream as new entries (for any process's reader); returns how many.
GIVE_BACK = """
local stream, me = KEYS[1], ARGV[1]
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', stream, 'gw', id, id, 1)
  if p[1] and p[1][2] == me then
    local e = redis.call('XRANGE', stream, id, id)
    if e[1] then
      redis.call('XADD', stream, '*', unpack(e[1][2]))
      n = n + 1
    end
    redis.call('XACK', stream, 'gw', id)
    redis.call('XDEL', stream, id)
  end
end
return n
"""

# KEYS: the stream. ARGV: node, entry ids. Resets the idle time of entries this process still
# holds, so that no other process takes them over as abandoned.
TOUCH = """
local stream, me = KEYS[1], ARGV[1]
local args = {stream, 'gw', me, '0'}
for i = 2, #ARGV do
  local p = redis.call('XPENDING', stream, 'gw', ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == me then args[#args + 1] = ARGV[i] end
end
if #args == 4 then return 0 end
args[#args + 1] = 'JUSTID'
redis.call('XCLAIM', unpack(args))
return #args - 5
"""

# ARGV: prefix, account, max age ms, limit. Drops entries older than max age that no process is
# sending (pending ones are being sent: their process drops them if they are too old).
SWEEP = (
    _DROP_ENTRY
    + """
local P, account, age, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local stream = P .. 'rx:' .. account
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = tostring(now_ms / 1000)
local dropped = {}
local cutoff = tostring(now_ms - age)
for _, e in ipairs(redis.call('XRANGE', stream, '-', cutoff, 'COUNT', limit)) do
  local p = redis.call('XPENDING', stream, 'gw', e[1], e[1], 1)
  if not p[1] then drop_entry(P, stream, e, 'expired', now, dropped, account) end
end
return dropped
"""
)

# ARGV: prefix, before (epoch s), limit. Removes final messages done before `before` whose
# receipt is settled, with their trail; one whose receipt is still owed goes to the back of the
# set (scored now), so that it does not hold up the others. Returns {removed, looked at}.
PURGE = """
local P, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', P .. 'done', '-inf', '(' .. before, 'LIMIT', 0, limit)
if #ids == 0 then return {0, 0} end
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local doomed, keys, owed = {}, {}, {}
for _, id in ipairs(ids) do
  local r = redis.call('HMGET', P .. 'm:' .. id, 'r', 'receipt')  -- (`receipt`: the layout before)
  if r[1] == '1' or (not r[1] and r[2] == '1') then
    owed[#owed + 1] = now
    owed[#owed + 1] = id
  else
    doomed[#doomed + 1] = id
    keys[#keys + 1] = P .. 'm:' .. id
    keys[#keys + 1] = P .. 'ev:' .. id
  end
end
for i = 1, #doomed, 1000 do
  redis.call('ZREM', P .. 'done', unpack(doomed, i, math.min(#doomed, i + 999)))
end
for i = 1, #keys, 1000 do
  redis.call('DEL', unpack(keys, i, math.min(#keys, i + 999)))
end
for i = 1, #owed, 1000 do
  redis.call('ZADD', P .. 'done', 'XX', unpack(owed, i, math.min(#owed, i + 999)))
end
return {#doomed, #ids}
"""

ALL = {
    "commit": COMMIT,
    "route": ROUTE,
    "heartbeat": HEARTBEAT,
    "claim": CLAIM,
    "claim_begin": CLAIM_BEGIN,
    "claim_end": CLAIM_END,
    "bind": BIND,
    "bucket": BUCKET,
    "slots": SLOTS,
    "give_back": GIVE_BACK,
    "requeue": REQUEUE,
    "touch": TOUCH,
    "sweep": SWEEP,
    "purge": PURGE,
}


class Scripts:
    """The scripts' SHA1s once loaded; `call` runs one by its SHA and loads it again when Redis
    forgot it (a restart without persistence, SCRIPT FLUSH)."""

    def __init__(self, shas: dict[str, str]) -> None:
        self.shas = shas

    @classmethod
    def load_sync(cls, client: Any) -> Scripts:
        return cls({name: client.script_load(src) for name, src in ALL.items()})

    async def call(self, client: Any, name: str, keys: list[Any], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.shas[name], len(keys), *keys, *args)
        except NoScriptError:
            self.shas[name] = await client.script_load(ALL[name])
            return await client.evalsha(self.shas[name], len(keys), *keys, *args)
