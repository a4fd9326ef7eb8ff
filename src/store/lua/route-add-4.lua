--[[
  Adds a route (Store.routeAdd) in both directions at once, or replaces the value of an existing one.
  One script so that concurrent adds to one target never pass its maximum and a reader never sees a
  route in one direction only. Kept alike in memory-store.ts.

  Input:
    KEYS[1] route:from:<source>  hash id → target
    KEYS[2] route:to:<target>    hash id → source
    KEYS[3] route:id:<id>        hash source, target, value
    KEYS[4] route:sources        set of sources with a route
    ARGV[1] id, ARGV[2] source, ARGV[3] target, ARGV[4] value, ARGV[5] the most routes per target

  Output: "added", "updated" or "full"; an error when the id is taken by another source or target
]]
local record = redis.call("HMGET", KEYS[3], "source", "target")
if record[1] then
  if record[1] ~= ARGV[2] or record[2] ~= ARGV[3] then
    return redis.error_reply("ERR route id " .. ARGV[1] .. " belongs to another source or target")
  end
  redis.call("HSET", KEYS[3], "value", ARGV[4])
  return "updated"
end
if redis.call("HLEN", KEYS[2]) >= tonumber(ARGV[5]) then
  return "full"
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
redis.call("HSET", KEYS[3], "source", ARGV[2], "target", ARGV[3], "value", ARGV[4])
redis.call("SADD", KEYS[4], ARGV[2])
return "added"
