--[[
  Takes or renews a lease (Store.lease): KEYS[1] holds the owner while the lease runs.
  ARGV[1] owner, ARGV[2] time to live in ms (positive integer).
  Output: 1 when ARGV[1] holds the lease for the next ARGV[2] ms (it was free, expired or theirs), else 0.
]]
local current = redis.call("GET", KEYS[1])
if current == false or current == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
return 0
