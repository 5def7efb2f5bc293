-- ARGV: prefix, name, sha256 of the token's secret
if not has_meta() then return LOST end
local uid = redis.call('INCR', K('seq:user'))
redis.call('HSET', K('u:' .. uid), 'name', ARGV[2], 'sec', ARGV[3], 'win', 0)
return {'ok', uid}
