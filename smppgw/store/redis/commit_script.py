"""The commit script of the Redis store (commit.py calls it once per partition a batch writes):
every write of a batch applied in one atomic call. Key layout: scripts.py. `DROP_ENTRY` is the
Lua function that drops a waiting deliver_sm, shared with scripts.py's SWEEP."""

from __future__ import annotations

DROP_ENTRY = """
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

# ARGV: prefix, node, now, max_per_account, pid_ttl_ms, trail ttl ms, the deliver_sm this
# process's receivers take now (JSON {account: how many}, or ''), and the ops, flat
# (codec.encode_ops: how many final states, their 6 values each, then each other op as its
# letter and its values). Returns
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
# share is one variadic command each (the open set read and written, acks and deletes of
# stream entries, the streams' length checks), and retention's index has one entry per batch,
# not per message: the ids the batch made final, as one string (`dn:<first of them>`), scored in
# `done` by the latest done time among them.
# Ownership is the hash's `node` field. A message is in the `open:` set of its owner, and of no
# other, while it is unfinished, and after its final state while its receipt is owed to a
# receiver of that process without a stream entry (the insert, CLAIM, the final state and the
# settle keep the set and `node` together). So one SMISMEMBER for the batch tells which final
# states are ours to write: not one that another process took over, nor one already final with
# its receipt in a stream or settled (a batch applied again owes no second receipt; only then is
# `node` read, to tell the two apart). An update before the final state reads `node` with the
# old pid (a new pid is indexed).
# A receipt for a receiver of this process goes to it here and now, what waited in the account's
# stream first (XREADGROUP as its blocking read would, so it is pending for this process like any
# it read). A final receipt the room still has place for gets no stream entry at all: its message
# stays in `open:<node>` (and its `r` says it is owed), the process hands the record it has to
# its outbox, and the settle takes the id off the set. The process sends such a receipt without
# its entry (the biggest part of the ops) when it expects room for it; finding none, it is owed
# here all the same, for the process to give back (such a receipt rides on its final state: its
# receipt value names the account, codec.encode_ops). Only what the process gives back, or leaves
# behind when it dies, goes to the stream (REQUEUE). Should the answer be lost, the batch applied
# again adds nothing new: a final state whose receipt is still owed here is written again with
# the same fields and its receipt taken again (or, without room now, put in the stream, or given
# back to the process); one whose receipt went to the stream is not open and passed over; what
# the first application read from the stream is pending here untouched, and adopted by a reader
# once idle for claim_after.
COMMIT = (
    DROP_ENTRY
    + """
local P, me, now = ARGV[1], ARGV[2], ARGV[3]
local maxper, pidttl, trailttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local FIRST = 9  -- the first final state's id (ARGV[8] says how many there are)
local finals_end = FIRST + 6 * tonumber(ARGV[8])  -- where the other ops begin
local clock = tonumber(now)
local fenced, early, dropped, newly_owed, taken = {}, {}, {}, {}, {}
local opened, closed, unpid, last = {}, {}, {}, 0
local acks, added, ours, nadd = {}, {}, {}, 0
local keep, shut, left = {}, {}, {}

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

if ARGV[7] ~= '' then  -- the room of this process's receivers: what waited goes first
  for account, room in pairs(cjson.decode(ARGV[7])) do
    if redis.call('EXISTS', P .. 'rx:' .. account) == 1 then room = room - read(account, room) end
    left[account] = room
  end
end

-- the messages of the final states that are open here (ours, and not final yet), in one read
local open = {}
do
  local ids = {}
  for i = FIRST, finals_end - 1, 6 do ids[#ids + 1] = ARGV[i] end
  for i = 1, #ids, 1000 do
    local some = {unpack(ids, i, math.min(#ids, i + 999))}
    for j, yes in ipairs(redis.call('SMISMEMBER', P .. 'open:' .. me, unpack(some))) do
      if yes == 1 then open[some[j]] = true end
    end
  end
end

-- a final receipt owed to this process's receiver, sent without its entry (the process has
-- it): taken here now if there is room, else given back (for the process to requeue); its
-- message stays open here while the receipt is owed here
local function owed_here(account, id)
  local room = left[account] or 0
  keep[id] = true
  if room > 0 then
    left[account] = room - 1
    take(account, '', nadd)
  else
    take(account, '', -nadd)
  end
end

-- final: id, state, pid, s, receipt ('1' owed, '+' and the account it is owed here to, or
-- none: a number), done_at
for i = FIRST, finals_end - 1, 6 do
  local id, receipt = ARGV[i], ARGV[i + 4]
  local key = P .. 'm:' .. id
  local account = string.byte(receipt) == 43 and string.sub(receipt, 2)  -- ('+')
  if account then nadd = nadd + 1 end  -- (its place among the adds, applied or not)
  if not open[id] then  -- another process's now, or final already (this batch applied again)
    if redis.call('HGET', key, 'node') ~= me then fenced[#fenced + 1] = id end
  else
    if account or receipt == '1' then
      redis.call('HSET', key, 'state', ARGV[i + 1], 's', ARGV[i + 3], 'r', '1')
      if account then owed_here(account, id) else newly_owed[id] = true end
    else
      redis.call('HSET', key, 'state', ARGV[i + 1], 's', ARGV[i + 3])
    end
    closed[#closed + 1] = id
    if ARGV[i + 2] ~= '' then unpid[#unpid + 1] = P .. 'pid:' .. ARGV[i + 2] end
    local done_at = math.min(tonumber(ARGV[i + 5]) or clock, clock)  -- (a provider's clock ahead)
    if done_at > last then last = done_at end
  end
end

local i, n = finals_end, #ARGV
while i <= n do
  local kind = ARGV[i]
  if kind == 'I' then  -- id, state, how many hash fields and values, they
    local id, nf = ARGV[i + 1], tonumber(ARGV[i + 3])
    redis.call('HSET', P .. 'm:' .. id, 'node', me, unpack(ARGV, i + 4, i + 3 + nf))
    if tonumber(ARGV[i + 2]) < 2 then opened[#opened + 1] = id end
    i = i + 4 + nf
  elseif kind == 'i' then  -- id, d: a new message with nothing else set
    local id = ARGV[i + 1]
    redis.call('HSET', P .. 'm:' .. id, 'node', me, 'd', ARGV[i + 2])
    opened[#opened + 1] = id
    i = i + 3
  elseif kind == 'U' then  -- id, state, pid, s (not final)
    local id = ARGV[i + 1]
    local key = P .. 'm:' .. id
    local old = redis.call('HMGET', key, 'node', 'pid')
    if old[1] ~= me then
      fenced[#fenced + 1] = id
    else
      local pid = ARGV[i + 3]
      if pid ~= (old[2] or '') then
        redis.call('HSET', key, 'state', ARGV[i + 2], 's', ARGV[i + 4], 'pid', pid)
        if pid ~= '' then
          redis.call('SET', P .. 'pid:' .. pid, id, 'PX', pidttl)
          local e = redis.call('GETDEL', P .. 'early:' .. pid)
          if e then early[#early + 1] = e end
        end
      else
        redis.call('HSET', key, 'state', ARGV[i + 2], 's', ARGV[i + 4])
      end
    end
    i = i + 5
  elseif kind == 'R' then  -- id, d
    local id = ARGV[i + 1]
    local key = P .. 'm:' .. id
    if redis.call('HGET', key, 'node') ~= me then
      fenced[#fenced + 1] = id
    else
      redis.call('HSET', key, 'd', ARGV[i + 2])
    end
    i = i + 3
  elseif kind == 'A' or kind == 'a' then  -- account, message id (A) or key (a), entry
    local account, entry, add = ARGV[i + 1], ARGV[i + 3], false
    nadd = nadd + 1
    if kind == 'A' then  -- a final receipt: with its message's final state, once
      local id = ARGV[i + 2]
      if newly_owed[id] then
        if entry == '' or (left[account] or 0) > 0 then  -- to this process's receiver
          owed_here(account, id)
        else
          add = true
        end
      end
    else  -- an intermediate receipt or MO: once by its key
      add = redis.call('SET', P .. 'rk:' .. ARGV[i + 2], '1', 'NX', 'PX', 86400000)
    end
    if add then
      ours[redis.call('XADD', P .. 'rx:' .. account, '*', 'd', entry)] = nadd
      added[account] = true
    end
    i = i + 4
  elseif kind == 'X' then  -- account, entry
    ack(P .. 'rx:' .. ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif kind == 'D' or kind == 'd' then  -- id, r, and (D) the account and stream entry
    local key = P .. 'm:' .. ARGV[i + 1]
    -- one write, no read: a message with a receipt owed has its `r` (and is not purged while it
    -- is owed), so a new field means it was gone (or of the layout before, with `receipt`)
    if redis.call('HSET', key, 'r', ARGV[i + 2]) == 1 and redis.call('HEXISTS', key, 'node') == 0 then
      redis.call('DEL', key)
    end
    if kind == 'D' then
      ack(P .. 'rx:' .. ARGV[i + 3], ARGV[i + 4])
      i = i + 5
    else  -- owed here without an entry (or one not known): off the open set
      shut[#shut + 1] = ARGV[i + 1]
      i = i + 3
    end
  elseif kind == 'E' then  -- id, event
    local key = P .. 'ev:' .. ARGV[i + 1]
    redis.call('RPUSH', key, ARGV[i + 2])
    redis.call('PEXPIRE', key, trailttl)  -- retention removes it with its message; this, if not
    i = i + 3
  else
    return redis.error_reply('COMMIT: unknown op ' .. tostring(kind) .. ' at argument ' .. i)
  end
end

local openkey = P .. 'open:' .. me
each({'SADD', openkey}, opened, 1)
for _, id in ipairs(closed) do
  if not keep[id] then shut[#shut + 1] = id end
end
each({'SREM', openkey}, shut, 1)
if #closed > 0 then  -- the batch's final messages, for retention: one entry for all of them
  redis.call('APPEND', P .. 'dn:' .. closed[1], ',' .. table.concat(closed, ','))
  redis.call('ZADD', P .. 'done', 'GT', last, '+' .. closed[1])
end
each({'DEL'}, unpid, 1)
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
