--[[
  Sets one field of a hash only if it is absent and, when it was written, the hash's time to live
  and an announcement on a channel (Store.hsetnx with ttlMs or notify): one command instead of
  HSETNX, PEXPIRE and PUBLISH, with no window in which the hash has no TTL, and the announcement
  made only when something was written.

  Input:
    KEYS[1] the hash

    ARGV[1] the field
    ARGV[2] the value
    ARGV[3] time to live in milliseconds, a positive integer, or "" for none
    ARGV[4] (optional) the channel to announce on, with the key prefix
    ARGV[5] (optional) the message to announce

  Output:
    1 when the field was written, 0 when it existed (nothing changed then)
    errors: WRONGTYPE when KEYS[1] is not a hash
]]
local added = redis.call("HSETNX", KEYS[1], ARGV[1], ARGV[2])
if added == 1 then
  if ARGV[3] ~= "" then
    redis.call("PEXPIRE", KEYS[1], ARGV[3])
  end
  if ARGV[4] then
    redis.call("PUBLISH", ARGV[4], ARGV[5])
  end
end
return added
