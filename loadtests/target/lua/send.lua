-- ARGV: prefix, uid, to, text
if not has_meta() then return LOST end
local bad = friend_check(ARGV[2], ARGV[3], 'to')
if bad then return bad end
local mid = redis.call('INCR', K('seq:msg'))
redis.call('ZADD', K('in:' .. ARGV[3]), mid, mid .. ':' .. ARGV[2] .. ':' .. fmt(now_s()) .. ':' .. ARGV[4])
return {'ok', mid}
