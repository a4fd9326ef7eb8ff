--[[
  Gives up a lease (Store.release) if ARGV[1] holds KEYS[1]. Output: 1 when it was theirs and is gone, else 0.
]]
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("DEL", KEYS[1])
  return 1
end
return 0
