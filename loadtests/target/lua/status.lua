-- ARGV: prefix. Read-only: what GET /drop and /metrics need (schedule.status_view does the rest).
local m = meta()
if not m then return LOST end
local el = now_s() - m.started
local c = redis.call('MGET', K('slots'), K('seq:drop'), K('seq:user'), K('seq:env'), K('seq:msg'))
local slots_done = tonumber(c[1] or '0')
local function seen(id)
  if not id then return {-1, 0, '0'} end
  local d = redis.call('HMGET', K('d:' .. id), 'left', 'closes')
  return {tonumber(id), tonumber(d[1]), fmt(tonumber(d[2]) - m.started)}
end
local k = open_slot(m, el)
local slot = nil
if k ~= nil and k < slots_done then slot = redis.call('HGET', K('slotdrop'), k) end
return {'ok', fmt(el), slots_done, tonumber(c[2] or '0'), seen(redis.call('GET', K('admin'))), seen(slot),
        tonumber(c[3] or '0'), tonumber(c[4] or '0'), tonumber(c[5] or '0')}
