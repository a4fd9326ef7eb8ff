--[[
  Claims the due members of a sorted set (Store.zclaim): up to ARGV[3] members with a score of at
  most ARGV[1], lowest score first (equal scores by member), each moved to ARGV[2], the end of its
  lease, and returned. One script so that concurrent callers never claim the same member: a
  ZRANGEBYSCORE and ZADDs sent from the client would let two workers read the same due members.

  Input:
    KEYS[1] the sorted set

    ARGV[1] now, a finite score (epoch milliseconds)
    ARGV[2] now + lease, the score of a claimed member (greater than ARGV[1]). Computed by the client
            and passed through as text: Lua would format a number it computed with 14 digits only
    ARGV[3] the most members to claim, an integer >= 0 (0 claims nothing)

  Output:
    the claimed members, lowest score first (empty when none is due or KEYS[1] does not exist)
    errors: WRONGTYPE when KEYS[1] is not a sorted set (nothing is written then)
]]
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call("ZADD", KEYS[1], "XX", ARGV[2], member)
end
return due
