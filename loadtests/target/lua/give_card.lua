-- ARGV: prefix, uid, card_id, to
if not has_meta() then return LOST end
local uid, card, to = ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', K('draw')) == 1 then return reject(409, 'the game is closed: the five-card draw has been made', 'card_id') end
local owner = redis.call('HGET', K('co'), card)
if not owner then return reject(404, 'unknown card', 'card_id') end
if owner ~= uid then return reject(403, 'not your card', 'card_id') end
local bad = friend_check(uid, to, 'to')
if bad then return bad end
redis.call('HSET', K('co'), card, to)
redis.call('SMOVE', K('uc:' .. uid), K('uc:' .. to), card)
redis.call('INCR', K('gifts'))
return {'ok'}
