// The Redis backend's Lua script. Redis runs a script atomically, but does not undo what
// a failing script already wrote, so every mutating operation first checks and computes
// (phase 1, reads only, with a local overlay for earlier writes of the same batch) and
// only then writes (phase 2). One `apply` carries a group of batches: each is checked
// against the overlay the ones before it left, and a batch that fails has its changes
// to the overlay undone, so the others are written as if each had been its own call.
// Lua numbers are doubles, so 64-bit integers are carried as {hi, lo} pairs of 32-bit
// halves of their two's complement.
#include "store/redis_script.hpp"

namespace prism::store {

const std::string_view kRedisStoreScript = R"LUA(
-- The call's arguments and state, set by main at every call: as a function library (Redis
-- 7) this top level runs once per server, so nothing here may keep a value between calls.
local ARGS, op, P
local TWO32, TWO31 = 4294967296, 2147483648
local at  -- index of the write being checked, for error messages

local Failure = {}
local function throw(code, message)
  error(setmetatable({code = code, message = message}, Failure), 0)
end
-- The reply for an error a call (or a batch of a group) raised.
local function error_reply(result)
  if type(result) == 'table' and getmetatable(result) == Failure then
    return {err = 'PRISM ' .. result.code .. ' ' .. at .. ' ' .. result.message}
  end
  if type(result) == 'table' and result.err then return {err = result.err} end
  return {err = 'ERR ' .. tostring(result)}
end

-- The overlay's changes made by the batch being planned, oldest first, as flat triples
-- table, key, old value (no table per change): undone when the batch fails, so the next
-- batch of the group does not see them.
local undo, undo_size
local function remember(t, k)
  if undo then
    undo[undo_size + 1], undo[undo_size + 2], undo[undo_size + 3] = t, k, t[k]
    undo_size = undo_size + 3
  end
end
-- Sends `command key item...` for a flat list of items, in chunks of `stride` (even, so
-- pairs stay whole): Lua's unpack is limited to a few thousand values.
local function spread(command, key, items, stride)
  local out = {}
  for first = 1, #items, stride do
    local part = redis.call(command, key, unpack(items, first, math.min(first + stride - 1, #items)))
    if type(part) == 'table' then
      for _, v in ipairs(part) do out[#out + 1] = v end
    end
  end
  return out
end

-- ---- 64-bit integers ----------------------------------------------------------------
local function negate(v)
  local hi, lo = TWO32 - 1 - v[1], TWO32 - v[2]
  if lo == TWO32 then lo = 0; hi = (hi + 1) % TWO32 end
  return {hi, lo}
end
local function add(a, b)
  local lo, carry = a[2] + b[2], 0
  if lo >= TWO32 then lo = lo - TWO32; carry = 1 end
  local hi = (a[1] + b[1] + carry) % TWO32
  local sa, sb, sr = a[1] >= TWO31, b[1] >= TWO31, hi >= TWO31
  if sa == sb and sr ~= sa then throw('INVALID', 'the result overflows a 64-bit integer') end
  return {hi, lo}
end
local function from_dec(s)
  local negative = s:sub(1, 1) == '-'
  local hi, lo = 0, 0
  for i = (negative and 2 or 1), #s do
    lo = lo * 10 + (s:byte(i) - 48)
    local carry = math.floor(lo / TWO32)
    lo = lo - carry * TWO32
    hi = (hi * 10 + carry) % TWO32
  end
  if negative then return negate({hi, lo}) end
  return {hi, lo}
end
local function to_dec(v)
  local negative = v[1] >= TWO31
  if negative then v = negate(v) end
  local hi, lo, digits = v[1], v[2], {}
  repeat
    local r = hi % 10
    hi = (hi - r) / 10
    local x = r * TWO32 + lo
    local d = x % 10
    lo = (x - d) / 10
    table.insert(digits, 1, string.char(48 + d))
  until hi == 0 and lo == 0
  return (negative and '-' or '') .. table.concat(digits)
end
-- A 16-hex-digit key whose byte order is the rank order (better first).
local function sort_key(v, descending)
  local hi, lo = (v[1] + TWO31) % TWO32, v[2]
  if descending then hi, lo = TWO32 - 1 - hi, TWO32 - 1 - lo end
  return string.format('%08x%08x', hi, lo)
end
local function from_sort_key(h, descending)
  local hi, lo = tonumber(h:sub(1, 8), 16), tonumber(h:sub(9, 16), 16)
  if descending then hi, lo = TWO32 - 1 - hi, TWO32 - 1 - lo end
  return {(hi + TWO31) % TWO32, lo}
end
local clock  -- the server's clock, read once per call
local function now_ms()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end

-- ---- documents: hash {v = value, n = version} plus a lexicographic index per collection
local function doc_key(c, k) return P .. 'doc:' .. #c .. ':' .. c .. ':' .. k end
local function index_key(c) return P .. 'idx:' .. c end
local docs  -- doc key -> version as this batch has left it (0 = absent)
local function doc_version(dk)
  if docs[dk] == nil then docs[dk] = tonumber(redis.call('HGET', dk, 'n') or '0') end
  return docs[dk]
end
local function check_expected(current, expected)
  if expected ~= '' and tonumber(expected) ~= current then
    throw('CONFLICT', 'expected version ' .. expected .. ', found ' .. string.format('%d', current))
  end
end
local function plan_put(c, k, value, expected)
  local dk = doc_key(c, k)
  local current = doc_version(dk)
  check_expected(current, expected)
  remember(docs, dk)
  docs[dk] = current + 1
  -- The version as text once: for the reply and for HSET (a Lua number as a command
  -- argument is formatted with sprintf by Redis).
  return {kind = 'put', dk = dk, ik = index_key(c), key = k, value = value,
          version = string.format('%d', current + 1), new = current == 0}
end
local function plan_delete(c, k, expected)
  local dk = doc_key(c, k)
  local current = doc_version(dk)
  check_expected(current, expected)
  if current == 0 then throw('NOT_FOUND', 'no document ' .. c .. '/' .. k) end
  remember(docs, dk)
  docs[dk] = 0
  return {kind = 'del', dk = dk, ik = index_key(c), key = k}
end

-- ---- counters ----------------------------------------------------------------------------
local counters
local function plan_counter_add(name, delta)
  local ck = P .. 'ctr:' .. name
  local current = counters[ck]
  if current == nil then current = from_dec(redis.call('GET', ck) or '0') end
  local value = add(current, from_dec(delta))
  remember(counters, ck)
  counters[ck] = value
  return {kind = 'ctr', ck = ck, value = to_dec(value)}
end

-- ---- leaderboards: a ZSET of members "score|subscore|submitted_ms|seq|owner\0metadata"
-- (16 hex digits each, all ZSET scores 0, so the byte order of members is the rank order;
-- the unique seq means nothing after the digits decides it), a hash owner -> member and the
-- spec hash {order, op}. Members older versions wrote end with the owner; their metadata is
-- in a hash owner -> metadata, dropped when the owner's entry is next written.
-- A board's table holds `stored` (owner -> the member Redis holds, false for none, once
-- read), `members` (owner -> the member the group leaves) and `touched` (owners in the
-- order the group first submitted for them, each once: `listed`), so that the group's
-- submissions to a board are written with one command of each kind.
local boards, board_list
-- The specs prismd may name for a board it knows ("desc set"): a spec never changes once
-- created, so prismd's copy saves reading it here. (Written out: a function library's top
-- level has no library functions such as ipairs.)
local SPECS = {
  ['asc best'] = {'asc', 'best'}, ['asc set'] = {'asc', 'set'}, ['asc incr'] = {'asc', 'incr'},
  ['desc best'] = {'desc', 'best'}, ['desc set'] = {'desc', 'set'}, ['desc incr'] = {'desc', 'incr'},
}
local function load_board(b, known)
  if boards[b] then return boards[b] end
  local spec = SPECS[known] or redis.call('HMGET', P .. 'lbs:' .. b, 'order', 'op')
  if not spec[1] then throw('NOT_FOUND', 'no board ' .. b) end
  local board = {z = P .. 'lb:' .. b, o = P .. 'lbo:' .. b, m = P .. 'lbm:' .. b,
                 descending = spec[1] == 'desc', op = spec[2], stored = {}, members = {},
                 touched = {}, listed = {}}
  boards[b] = board
  board_list[#board_list + 1] = board
  return board
end
-- The sequence orders submissions of one millisecond as Redis ran them. One counter
-- serves every board, raised once per call by the submissions the call carries (a counter
-- per board cost a write per board per call; the spec's seq field is what older versions
-- kept, and the millisecond before the sequence keeps their order apart from ours).
local seq_reserve, seq_next
local function next_seq()
  if not seq_next then seq_next = redis.call('INCRBY', P .. 'seq', seq_reserve) - seq_reserve end
  seq_next = seq_next + 1
  return seq_next
end
local function member_of(board, owner)
  local m = board.members[owner]
  if m ~= nil then return m end
  m = board.stored[owner]
  if m == nil then
    m = redis.call('HGET', board.o, owner)
    board.stored[owner] = m
  end
  return m or nil
end
-- Reads the stored members of `owners` with one HMGET (chunked) instead of one HGET each.
local function read_members(board, owners)
  local found = spread('HMGET', board.o, owners, 1000)
  for i, owner in ipairs(owners) do board.stored[owner] = found[i] end
end
-- Whether a member carries its metadata (after the NUL that ends its owner).
local function carries_metadata(member) return member:find('\0', 65, true) ~= nil end
-- The metadata to reply beside a member: '' where the member carries it.
local function metadata_of(board, member)
  if carries_metadata(member) then return '' end
  return redis.call('HGET', board.m, member:sub(65)) or ''
end
local submitted  -- the sort key of the call's clock, made once
-- `ascending` and `descending`: the submitted score's and subscore's sort keys for each
-- order, made by prismd, so that only an increment computes here. `known`: the board's
-- spec as prismd knows it, or ''.
local function plan_submit(b, owner, ascending, descending, metadata, known)
  local board = load_board(b, known)
  local ranked = board.descending and descending or ascending
  local old = member_of(board, owner)
  if old and board.op == 'incr' then
    local score = add(from_sort_key(old:sub(1, 16), board.descending),
                      from_sort_key(ascending:sub(1, 16), false))
    local sub = add(from_sort_key(old:sub(17, 32), board.descending),
                    from_sort_key(ascending:sub(17, 32), false))
    ranked = sort_key(score, board.descending) .. sort_key(sub, board.descending)
  end
  -- Sort keys compare as strings in rank order: best keeps the old entry unless the new
  -- one ranks strictly before it.
  if old and board.op == 'best' and ranked >= old:sub(1, 32) then
    return {kind = 'keep', board = board, owner = owner, member = old}
  end
  if not submitted then
    local now = now_ms()  -- the server's clock, shared by every node of the region
    submitted = sort_key({math.floor(now / TWO32), now % TWO32}, false)
  end
  local member = ranked .. submitted .. string.format('%016x', next_seq()) .. owner .. '\0' .. metadata
  if not board.listed[owner] then  -- kept when a batch is undone: write_boards skips it
    board.listed[owner] = true
    board.touched[#board.touched + 1] = owner
  end
  remember(board.members, owner)
  board.members[owner] = member
  return {kind = 'sub', board = board, owner = owner, member = member}
end

local function write(a)
  if a.kind == 'put' then
    redis.call('HSET', a.dk, 'v', a.value, 'n', a.version)
    if a.new then redis.call('ZADD', a.ik, '0', a.key) end
  elseif a.kind == 'del' then
    redis.call('DEL', a.dk)
    redis.call('ZREM', a.ik, a.key)
  elseif a.kind == 'ctr' then
    redis.call('SET', a.ck, a.value)
  end
end
-- Every board's entries as the call left them: per board one ZREM of the replaced
-- members, one ZADD and one HSET of the new ones (a group carries many submissions to
-- the same few boards, and each redis.call costs the script more than the work it asks).
local function write_boards()
  for _, board in ipairs(board_list) do
    local removed, added, owned, dropped = {}, {}, {}, {}
    for _, owner in ipairs(board.touched) do
      local member = board.members[owner]
      if member then  -- nil where only batches that failed submitted for the owner
        local old = board.stored[owner]
        if old then
          removed[#removed + 1] = old
          if not carries_metadata(old) then dropped[#dropped + 1] = owner end
        end
        added[#added + 1] = '0'
        added[#added + 1] = member
        owned[#owned + 1] = owner
        owned[#owned + 1] = member
      end
    end
    if #removed > 0 then spread('ZREM', board.z, removed, 1000) end
    if #added > 0 then
      spread('ZADD', board.z, added, 1000)
      spread('HSET', board.o, owned, 1000)
    end
    if #dropped > 0 then spread('HDEL', board.m, dropped, 1000) end
  end
end

local function board_range(board, start, stop)
  local out = {board.descending and 'desc' or 'asc', start}
  if stop < start then return out end
  local members = redis.call('ZRANGE', board.z, start, stop)
  if #members == 0 then return out end
  for _, m in ipairs(members) do
    out[#out + 1] = m
    out[#out + 1] = metadata_of(board, m)
  end
  return out
end

-- ---- presence: string "expires_ms:status" with PX ttl, a lexicographic index of owners
-- and an index by expiry to prune the first one.
local function presence_key(owner) return P .. 'pr:' .. owner end
local function prune_presence(now)
  local stale = redis.call('ZRANGEBYSCORE', P .. 'pre', '-inf', now, 'LIMIT', 0, 64)
  for _, owner in ipairs(stale) do
    if redis.call('EXISTS', presence_key(owner)) == 0 then
      redis.call('ZREM', P .. 'pre', owner)
      redis.call('ZREM', P .. 'pri', owner)
    end
  end
end

local ops = {}
-- get collection key -> {value, version}
-- list collection prefix start_bound limit -> {key, value, version, ...}
ops.list = function()
  local c, prefix = ARGS[3], ARGS[4]
  local keys = redis.call('ZRANGEBYLEX', index_key(c), ARGS[5], '+', 'LIMIT', 0, tonumber(ARGS[6]))
  local out = {}
  for _, k in ipairs(keys) do
    if k:sub(1, #prefix) ~= prefix then break end
    local r = redis.call('HMGET', doc_key(c, k), 'v', 'n')
    if r[2] then
      out[#out + 1] = k
      out[#out + 1] = r[1] or ''
      out[#out + 1] = tonumber(r[2])
    end
  end
  return out
end
-- apply calls (count (kind a b c d e f){count}){calls} -> per batch {result, ...} or an
-- error; kinds put, del, add, sub (sub board owner ascending descending metadata
-- known_spec). prismd groups the batches its callers queued while an earlier group ran:
-- each is all or nothing and sees the ones before it, as if each were its own call.
local function plan_batch(base, count, actions, results)
  for i = 0, count - 1 do
    at = i
    local w = base + i * 7
    local kind, a, b, c, d, e, f = ARGS[w], ARGS[w + 1], ARGS[w + 2], ARGS[w + 3],
                                   ARGS[w + 4], ARGS[w + 5], ARGS[w + 6]
    local action
    if kind == 'put' then
      action = plan_put(a, b, c, d)
      results[#results + 1] = action.version
    elseif kind == 'del' then
      action = plan_delete(a, b, d)
      results[#results + 1] = '0'
    elseif kind == 'add' then
      action = plan_counter_add(a, c)
      results[#results + 1] = action.value
    elseif kind == 'sub' then
      action = plan_submit(a, b, c, d, e, f)
      results[#results + 1] = '0'
    else
      throw('INVALID', 'unknown write kind ' .. kind)
    end
    actions[#actions + 1] = action
  end
end
ops.apply = function()
  local calls, bases, counts, pos = tonumber(ARGS[3]), {}, {}, 4
  -- First pass: where each batch starts, how many sequence numbers the group takes, and
  -- the owners to read per board (of boards whose spec prismd named, which exist).
  local wanted = {}
  seq_reserve = 0
  for n = 1, calls do
    counts[n], bases[n] = tonumber(ARGS[pos]), pos + 1
    for w = bases[n], bases[n] + (counts[n] - 1) * 7, 7 do
      if ARGS[w] == 'sub' then
        seq_reserve = seq_reserve + 1
        if SPECS[ARGS[w + 6]] then
          local board = load_board(ARGS[w + 1], ARGS[w + 6])
          if not wanted[board] then wanted[board] = {}; wanted[#wanted + 1] = board end
          local owners = wanted[board]
          owners[#owners + 1] = ARGS[w + 2]
        end
      end
    end
    pos = bases[n] + counts[n] * 7
  end
  for _, board in ipairs(wanted) do
    if #wanted[board] > 1 then read_members(board, wanted[board]) end  -- else one HGET later
  end

  local replies, actions = {}, {}
  for n = 1, calls do
    undo, undo_size = {}, 0
    local planned, results = {}, {}
    local ok, failure = pcall(plan_batch, bases[n], counts[n], planned, results)
    if ok then
      for _, action in ipairs(planned) do actions[#actions + 1] = action end
      replies[n] = results
    else
      for i = undo_size - 2, 1, -3 do undo[i][undo[i + 1]] = undo[i + 2] end
      replies[n] = error_reply(failure)
    end
  end
  undo = nil
  for _, action in ipairs(actions) do write(action) end
  write_boards()
  return replies
end
-- board_create board order op -> 1
ops.board_create = function()
  local s = P .. 'lbs:' .. ARGS[3]
  local spec = redis.call('HMGET', s, 'order', 'op')
  if spec[1] then
    if spec[1] ~= ARGS[4] or spec[2] ~= ARGS[5] then
      throw('CONFLICT', 'board ' .. ARGS[3] .. ' exists with order ' .. spec[1] .. ' and operator ' .. spec[2])
    end
    return 1
  end
  redis.call('HSET', s, 'order', ARGS[4], 'op', ARGS[5], 'seq', 0)
  return 1
end
-- board_submit board owner ascending descending metadata known_spec -> {order, rank, member, metadata}
ops.board_submit = function()
  local action = plan_submit(ARGS[3], ARGS[4], ARGS[5], ARGS[6], ARGS[7], ARGS[8])
  write_boards()
  local board = action.board
  local rank = redis.call('ZRANK', board.z, action.member)
  return {board.descending and 'desc' or 'asc', rank, action.member, metadata_of(board, action.member)}
end
-- board_around board owner limit -> {order, start, member, metadata, ...}
ops.board_around = function()
  local board = load_board(ARGS[3])
  local member = redis.call('HGET', board.o, ARGS[4])
  if not member then throw('NOT_FOUND', 'no entry for ' .. ARGS[4] .. ' on board ' .. ARGS[3]) end
  local rank, limit = redis.call('ZRANK', board.z, member), tonumber(ARGS[5])
  return board_range(board, math.max(0, rank - limit), rank + limit)
end
-- board_rank board owner -> {order, rank, member, metadata}
ops.board_rank = function()
  local board = load_board(ARGS[3])
  local member = redis.call('HGET', board.o, ARGS[4])
  if not member then throw('NOT_FOUND', 'no entry for ' .. ARGS[4] .. ' on board ' .. ARGS[3]) end
  return {board.descending and 'desc' or 'asc', redis.call('ZRANK', board.z, member), member,
          metadata_of(board, member)}
end
-- board_remove board owner -> 1
ops.board_remove = function()
  local board = load_board(ARGS[3])
  local member = redis.call('HGET', board.o, ARGS[4])
  if not member then throw('NOT_FOUND', 'no entry for ' .. ARGS[4] .. ' on board ' .. ARGS[3]) end
  redis.call('ZREM', board.z, member)
  redis.call('HDEL', board.o, ARGS[4])
  redis.call('HDEL', board.m, ARGS[4])
  return 1
end
-- board_reset board -> 1
ops.board_reset = function()
  local board = load_board(ARGS[3])
  redis.call('DEL', board.z, board.o, board.m)
  return 1
end
-- presence_set owner status ttl_ms -> expires_at_ms
ops.presence_set = function()
  local owner, ttl = ARGS[3], tonumber(ARGS[5])
  local now = now_ms()
  local expires = now + ttl
  redis.call('SET', presence_key(owner), string.format('%d', expires) .. ':' .. ARGS[4], 'PX', ttl)
  redis.call('ZADD', P .. 'pri', 0, owner)
  redis.call('ZADD', P .. 'pre', expires, owner)
  prune_presence(now)
  return expires
end
-- presence_get owner -> "expires_ms:status"
ops.presence_get = function()
  local v = redis.call('GET', presence_key(ARGS[3]))
  if not v then throw('NOT_FOUND', 'no presence for ' .. ARGS[3]) end
  return v
end
-- presence_remove owner -> 1
ops.presence_remove = function()
  local existed = redis.call('DEL', presence_key(ARGS[3]))
  redis.call('ZREM', P .. 'pri', ARGS[3])
  redis.call('ZREM', P .. 'pre', ARGS[3])
  if existed == 0 then throw('NOT_FOUND', 'no presence for ' .. ARGS[3]) end
  return 1
end
-- presence_list status_prefix limit -> {owner, "expires_ms:status", ...}
ops.presence_list = function()
  local prefix, limit = ARGS[3], tonumber(ARGS[4])
  prune_presence(now_ms())
  local out, found, start = {}, 0, '-'
  while found < limit do
    local owners = redis.call('ZRANGEBYLEX', P .. 'pri', start, '+', 'LIMIT', 0, 256)
    if #owners == 0 then break end
    for _, owner in ipairs(owners) do
      local v = redis.call('GET', presence_key(owner))
      if v then
        local status = v:sub(v:find(':', 1, true) + 1)
        if status:sub(1, #prefix) == prefix then
          out[#out + 1] = owner
          out[#out + 1] = v
          found = found + 1
          if found == limit then break end
        end
      end
    end
    start = '(' .. owners[#owners]
  end
  return out
end

-- The entry point (RedisConnection calls it with the call's arguments).
local function main(args)
  ARGS, op, P = args, args[1], args[2]
  at, clock, docs, counters, boards, board_list, seq_reserve, seq_next, submitted, undo =
    0, nil, {}, {}, {}, {}, 1, nil, nil, nil
  local handler = ops[op]
  if not handler then return {err = 'PRISM INVALID 0 unknown operation ' .. tostring(op)} end
  local ok, result = pcall(handler)
  if ok then return result end
  return error_reply(result)
end
)LUA";

}  // namespace prism::store
