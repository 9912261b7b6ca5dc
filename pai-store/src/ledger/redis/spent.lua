-- Spent on one scope on one day, after charging what expired.
-- ARGV: prefix, now_ms, day, kind, name.
local p, now_ms = ARGV[1], tonumber(ARGV[2])
expire_due(p, now_ms)
return hget0(day_key(p, ARGV[3]), 's:' .. ARGV[4] .. ':' .. ARGV[5])
