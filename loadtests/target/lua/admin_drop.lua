-- ARGV: prefix, pool_fen, duration_s, envelope_odds, card bounds ("bound,kind;...")
local m = meta()
if not m then return LOST end
local now = now_s()
local current = open_drop(m, now)
if current then redis.call('HSET', K('d:' .. current), 'closes', fmt(now)) end  -- superseded; its leftover stays accounted
local id = new_drop(ARGV[2], now, now + tonumber(ARGV[3]), ARGV[4], ARGV[5], -1)
redis.call('SET', K('admin'), id)
return {'ok', id}
