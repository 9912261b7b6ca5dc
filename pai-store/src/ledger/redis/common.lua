-- Shared by reserve.lua and settle.lua (prepended to each).
--
-- Keys, all under one hash tag so they share a cluster slot:
--   {P}:day:<day>  hash: "s:<kind>:<name>" spent, "r:<kind>:<name>" reserved; expires a day
--                  after its day ends (by the gateway's clock)
--   {P}:res        hash: reservation id -> JSON {d = day, s = {{kind, name, amount}, ...}}
--   {P}:due        sorted set: reservation id by deadline (unix ms)
--   {P}:seq        the last reservation id
-- Amounts are u128 as decimal strings: Lua numbers are doubles, exact only to 2^53, so the
-- arithmetic below works on 7-digit limbs.

local function big_cmp(a, b)
  if #a ~= #b then
    return (#a < #b) and -1 or 1
  end
  if a == b then return 0 end
  return (a < b) and -1 or 1
end

local function big_norm(a)
  a = string.gsub(a, '^0+', '')
  if a == '' then return '0' end
  return a
end

local function big_add(a, b)
  local out, carry = {}, 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local x = (i > 0) and tonumber(string.sub(a, math.max(1, i - 6), i)) or 0
    local y = (j > 0) and tonumber(string.sub(b, math.max(1, j - 6), j)) or 0
    local s = x + y + carry
    carry = (s >= 10000000) and 1 or 0
    table.insert(out, 1, string.format('%07d', s - carry * 10000000))
    i = i - 7
    j = j - 7
  end
  return big_norm(table.concat(out))
end

-- a - b, or 0 when b >= a (a counter never goes below zero).
local function big_sub(a, b)
  if big_cmp(a, b) <= 0 then return '0' end
  local out, borrow = {}, 0
  local i, j = #a, #b
  while i > 0 do
    local x = tonumber(string.sub(a, math.max(1, i - 6), i))
    local y = (j > 0) and tonumber(string.sub(b, math.max(1, j - 6), j)) or 0
    local s = x - y - borrow
    if s < 0 then
      s = s + 10000000
      borrow = 1
    else
      borrow = 0
    end
    table.insert(out, 1, string.format('%07d', s))
    i = i - 7
    j = j - 7
  end
  return big_norm(table.concat(out))
end

local function day_key(p, day)
  return '{' .. p .. '}:day:' .. day
end

-- Seconds a day's counters are kept from now: to a day after the day ends.
local function keep_secs(day, now_ms)
  local keep = (tonumber(day) + 2) * 86400 - math.floor(now_ms / 1000)
  if keep < 60 then keep = 60 end
  return keep
end

local function hget0(key, field)
  local v = redis.call('HGET', key, field)
  if not v then return '0' end
  return v
end

-- Close reservation `id`: release each scope's amount and charge actual[i], or the amount
-- reserved where actual has no entry. Answers whether it was open.
local function close_reservation(p, id, actual, now_ms)
  local payload = redis.call('HGET', '{' .. p .. '}:res', id)
  if not payload then return false end
  redis.call('HDEL', '{' .. p .. '}:res', id)
  redis.call('ZREM', '{' .. p .. '}:due', id)
  local r = cjson.decode(payload)
  local dk = day_key(p, r.d)
  for i, s in ipairs(r.s) do
    local f = s[1] .. ':' .. s[2]
    local charge = actual[i] or s[3]
    redis.call('HSET', dk, 'r:' .. f, big_sub(hget0(dk, 'r:' .. f), s[3]))
    redis.call('HSET', dk, 's:' .. f, big_add(hget0(dk, 's:' .. f), charge))
  end
  redis.call('EXPIRE', dk, keep_secs(r.d, now_ms))
  return true
end

-- Charge in full the reservations past their deadline (at most 100 a call: bounded work).
local function expire_due(p, now_ms)
  local due = redis.call('ZRANGEBYSCORE', '{' .. p .. '}:due', '-inf', now_ms, 'LIMIT', 0, 100)
  for _, id in ipairs(due) do
    close_reservation(p, id, {}, now_ms)
  end
end
