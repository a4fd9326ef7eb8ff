--[[
  Sets one field of a hash only if it is absent and, when it was written, the hash's time to live
  (Store.hsetnx with ttlMs): one command instead of HSETNX and PEXPIRE, with no window in which the
  hash has no TTL.

  Input:
    KEYS[1] the hash

    ARGV[1] the field
    ARGV[2] the value
    ARGV[3] time to live in milliseconds, a positive integer

  Output:
    1 when the field was written, 0 when it existed (nothing changed then)
    errors: WRONGTYPE when KEYS[1] is not a hash
]]
local added = redis.call("HSETNX", KEYS[1], ARGV[1], ARGV[2])
if added == 1 then
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
end
return added
