-- Reserve on every scope or on none.
-- ARGV: prefix, now_ms, day, expires_at_ms, n, then n × (kind, name, limit, amount).
-- Answers {"ok", id} or {"refused", index (1-based), spent, reserved}.
local p, now_ms, day, expires_at = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
expire_due(p, now_ms)
local dk = day_key(p, day)
local earlier = {}
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local f = ARGV[b + 1] .. ':' .. ARGV[b + 2]
  local limit, amount = ARGV[b + 3], ARGV[b + 4]
  local spent = hget0(dk, 's:' .. f)
  local reserved = big_add(hget0(dk, 'r:' .. f), earlier[f] or '0')
  if big_cmp(big_add(big_add(spent, reserved), amount), limit) > 0 then
    return {'refused', tostring(i), spent, reserved}
  end
  earlier[f] = big_add(earlier[f] or '0', amount)
end
local scopes = {}
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local f = ARGV[b + 1] .. ':' .. ARGV[b + 2]
  redis.call('HSET', dk, 'r:' .. f, big_add(hget0(dk, 'r:' .. f), ARGV[b + 4]))
  scopes[i] = {ARGV[b + 1], ARGV[b + 2], ARGV[b + 4]}
end
redis.call('EXPIRE', dk, keep_secs(day, now_ms))
local id = redis.call('INCR', '{' .. p .. '}:seq')
redis.call('HSET', '{' .. p .. '}:res', id, cjson.encode({d = day, s = scopes}))
redis.call('ZADD', '{' .. p .. '}:due', expires_at, id)
return {'ok', tostring(id)}
