--[[
  Adds to an integer counter and gives it a time to live only when this call created it
  (Store.incr with ttlMs). A plain INCRBY followed by PEXPIRE from the client could leave a counter
  without a TTL forever if the client died in between, or extend the TTL on every call.

  Input:
    KEYS[1] the counter

    ARGV[1] increment, an integer (may be negative)
    ARGV[2] time to live in milliseconds, a positive integer; applied only when KEYS[1] did not exist

  Output:
    the counter's new value (integer)
    errors: WRONGTYPE when KEYS[1] is not a string; "ERR value is not an integer or out of range"
            when it holds something that is not an integer (nothing is written then)
]]
local created = redis.call("EXISTS", KEYS[1]) == 0
local value = redis.call("INCRBY", KEYS[1], ARGV[1])
if created then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return value
