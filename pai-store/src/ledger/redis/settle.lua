-- Close a reservation with what was used.
-- ARGV: prefix, now_ms, id, then the actual amount per scope in the order reserved.
-- Answers 1 if it was open, 0 if it was already settled or expired (changing nothing).
local p, now_ms, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
expire_due(p, now_ms)
local actual = {}
for i = 4, #ARGV do
  actual[i - 3] = ARGV[i]
end
if close_reservation(p, id, actual, now_ms) then
  return 1
end
return 0
