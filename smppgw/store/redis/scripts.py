"""The Lua scripts of the Redis store: each runs atomically in Redis, so a batch of writes, a
claim of a dead process's work or a bucket's refill is all or nothing, in one round trip.

Key layout, under the configured prefix P (all readable with redis-cli; on a Redis Cluster
keys.py adds the hash tags: a message's keys in its partition, the processes' shared ones in
one slot of their own):
  P m:<id>        hash   a message (codec.py): `d`, the columns fixed at submit (JSON list,
                         its provider last); `state`; `s`, the others its sending changes (JSON
                         list: its provider first, which `d`'s is until then); `pid`, its
                         "<provider>:<provider id>"; `r`, its receipt ("1" while owed, then
                         JSON [receipt, receipt_at, receipt_to]); each left out while at its
                         default; `node`: the process that owns it, the only one whose writes
                         to it count
  P ev:<id>       list   the message's trail events (JSON), oldest first
  P open:<node>   set    ids of the messages a process owns work for (what a taker-over takes):
                         the unfinished ones, and final ones whose receipt its receivers took at
                         their commit, with no stream entry (the process has the record; a
                         taker-over, or the process itself after a restart, rebuilds it from the
                         message and adds it to the stream), until it is settled
  P pid:<provider>:<provider id>   string  our id, while the message waits for its final status
  P early:<provider>:<provider id> string  a report that came before its send answer (2 minutes)
  P done          zset   retention's index: an entry per commit that made messages final,
                         "+<id>", scored by the latest done time of them (passed over while
                         a receipt is owed); a message id itself in the layout before
  P dn:<id>       string the ids (",<id>,<id>…") of that entry, <id> the first of them
  P rx:<account>  stream deliver_sm waiting for a receiver of the account (group "gw"): one
                         field `d`, a JSON list: key, message_id, on_row, state, the rest
                         (codec.py)
  P rxs           set    accounts that have such a stream
  P owed:<node>   set    the layout before's set of those final ones (CLAIM and a restart read
                         it as part of open:<node>)
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

from smppgw.store.redis.codec import PACKED_LEN
from smppgw.store.redis.commit_script import COMMIT, DROP_ENTRY

# ARGV: prefix, node, provider, provider id, our id or '', report (JSON), early ttl ms.
ROUTE = """
local P, me, provider, pid, mid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local id = false
if pid ~= '' then id = redis.call('GET', P .. 'pid:' .. provider .. ':' .. pid) end
if not id and mid ~= '' then
  local h = redis.call('HMGET', P .. 'm:' .. mid, 'state', 's', 'provider', 'd')
  local by = h[3]  -- (a hash of the layout before `s`)
  if h[2] then
    by = cjson.decode(h[2])[1]
  elseif h[4] then  -- not sent yet: its provider is `d`'s last (none in the layout before)
    local ok, d = pcall(cjson.decode, h[4])
    if ok and #d > PACKED_LEN then by = d[#d] end
  end
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
""".replace("PACKED_LEN", str(PACKED_LEN))

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

# ARGV: partition prefix, node (the claimer), dead node. Returns the ids of the messages of the
# dead process's `open:` set, now ours: unfinished ones, and final ones whose receipt it owed
# without a stream entry (the claimer adds those to the stream, REQUEUE). An `owed:` set of the
# layout before counts as the latter.
CLAIM = """
local P, me, dead = ARGV[1], ARGV[2], ARGV[3]
local mine, ids, seen = P .. 'open:' .. me, {}, {}
for _, kind in ipairs({'open:', 'owed:'}) do
  for _, id in ipairs(redis.call('SMEMBERS', P .. kind .. dead)) do
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
      redis.call('HSET', P .. 'm:' .. id, 'node', me)
      redis.call('SADD', mine, id)
    end
  end
end
redis.call('DEL', P .. 'open:' .. dead, P .. 'owed:' .. dead)
local inbox = P .. 'inbox:' .. dead
for _, e in ipairs(redis.call('XRANGE', inbox, '-', '+')) do
  if e[2][2] == 'report' then redis.call('XADD', P .. 'inbox:' .. me, '*', unpack(e[2])) end
end
redis.call('DEL', inbox)
return ids
"""

# A message's `r` (or `receipt`, in the layout before) says its final receipt is still owed.
OWES = """
local function owes(r, receipt)
  return r == '1' or (not r and receipt == '1')
end
"""

# ARGV: partition prefix, node, then (message id, account, entry or '') triples: final receipts
# this process owes without a stream entry (COMMIT) that it gives back, took over, or left before
# a restart. Each whose message is still open here and still owes it goes to the account's stream
# (as a new entry, for any process's reader), and the message leaves the open set; one whose
# message is gone or settled only leaves it (an unfinished message stays). Returns how many were
# added.
REQUEUE = (
    OWES
    + """
local P, me = ARGV[1], ARGV[2]
local open, n = P .. 'open:' .. me, 0
for i = 3, #ARGV, 3 do
  local id, account, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local h = redis.call('HMGET', P .. 'm:' .. id, 'r', 'receipt', 'state', 'node')
  if not h[4] or tonumber(h[3] or '0') >= 2 then  -- gone, or final
    local owed = owes(h[1], h[2])
    if redis.call('SREM', open, id) == 1 and owed and entry ~= '' then
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
)

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
    DROP_ENTRY
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
# receipt is settled, with their trail, looking at about `limit` of them. `done` holds an entry
# per commit that made messages final ("+<id>", its ids in `dn:<id>`, scored by the latest done
# time of them; a message id itself in the layout before). What is still owed stays in its entry,
# scored now (at the back of the set, so that it does not hold up the others). Returns {removed,
# looked at}.
PURGE = (
    OWES
    + """
local P, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local entries = redis.call('ZRANGEBYSCORE', P .. 'done', '-inf', '(' .. before, 'LIMIT', 0, limit)
if #entries == 0 then return {0, 0} end
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local removed, looked, keys, gone, later = 0, 0, {}, {}, {}

local function owed(id)
  local r = redis.call('HMGET', P .. 'm:' .. id, 'r', 'receipt')
  if owes(r[1], r[2]) then return true end
  removed = removed + 1
  keys[#keys + 1] = P .. 'm:' .. id
  keys[#keys + 1] = P .. 'ev:' .. id
  return false
end

for _, entry in ipairs(entries) do
  if looked >= limit then break end
  if string.sub(entry, 1, 1) == '+' then
    local list = P .. 'dn:' .. string.sub(entry, 2)
    local kept, seen = {}, {}  -- (a batch applied again lists its ids twice)
    for id in string.gmatch(redis.call('GET', list) or '', '[^,]+') do
      if not seen[id] then
        seen[id] = true
        looked = looked + 1
        if owed(id) then kept[#kept + 1] = id end
      end
    end
    if #kept > 0 then
      redis.call('SET', list, ',' .. table.concat(kept, ','))
      later[#later + 1] = now
      later[#later + 1] = entry
    else
      keys[#keys + 1] = list
      gone[#gone + 1] = entry
    end
  else
    looked = looked + 1
    if owed(entry) then
      later[#later + 1] = now
      later[#later + 1] = entry
    else
      gone[#gone + 1] = entry
    end
  end
end
for i = 1, #gone, 1000 do
  redis.call('ZREM', P .. 'done', unpack(gone, i, math.min(#gone, i + 999)))
end
for i = 1, #keys, 1000 do
  redis.call('DEL', unpack(keys, i, math.min(#keys, i + 999)))
end
for i = 1, #later, 1000 do
  redis.call('ZADD', P .. 'done', 'XX', unpack(later, i, math.min(#later, i + 999)))
end
return {removed, looked}
"""
)

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
