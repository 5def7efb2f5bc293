-- ARGV: prefix, uid, friend_id
if not has_meta() then return LOST end
if not user_known(ARGV[3]) then return reject(404, 'unknown user', 'friend_id') end
if ARGV[3] == ARGV[2] then return reject(400, 'cannot befriend oneself', 'friend_id') end
redis.call('SADD', K('f:' .. ARGV[2]), ARGV[3])
redis.call('SADD', K('f:' .. ARGV[3]), ARGV[2])
return {'ok'}
