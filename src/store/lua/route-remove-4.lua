--[[
  Removes a route (Store.routeRemove) from both directions at once; its source leaves the set of
  routed sources with its last route. Kept alike in memory-store.ts.

  Input: KEYS as in route-add-4.lua; ARGV[1] id, ARGV[2] source, ARGV[3] target
  Output: 1 when the route was removed, 0 when no route has this id, source and target
]]
local record = redis.call("HMGET", KEYS[3], "source", "target")
if record[1] ~= ARGV[2] or record[2] ~= ARGV[3] then
  return 0
end
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("DEL", KEYS[3])
if redis.call("HLEN", KEYS[1]) == 0 then
  redis.call("SREM", KEYS[4], ARGV[2])
end
return 1
