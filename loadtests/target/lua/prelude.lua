-- Shared by every script (redis_store.py prepends it). ARGV[1] is the run's key prefix.
-- Each script is one atomic step: it checks everything first and writes only when every check
-- passed, so a refused or failed call changes nothing. The rules mirror state.py; keep them in step.
local P = ARGV[1]
local function K(s) return P .. s end
local function reject(status, msg, field) return {'!', status, msg, field or ''} end
local LOST = {'!', 503, "the store has lost this run's state (was Redis flushed, or restarted without persistence?)", ''}
local function fmt(t) return string.format('%.6f', t) end
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function meta()
  local v = redis.call('HMGET', K('meta'), 'started', 'first', 'dur', 'intv', 'count', 'pools', 'eodds', 'codds', 'maxenv')
  if not v[1] then return nil end
  local pools = {}
  for p in string.gmatch(v[6], '[^,]+') do pools[#pools + 1] = p end
  return {started = tonumber(v[1]), first = tonumber(v[2]), dur = tonumber(v[3]), intv = tonumber(v[4]),
          count = tonumber(v[5]), pools = pools, eodds = v[7], codds = v[8], maxenv = tonumber(v[9])}
end
local function has_meta() return redis.call('EXISTS', K('meta')) == 1 end
local function user_known(uid)
  local n = tonumber(uid)
  return n ~= nil and n >= 1 and n <= tonumber(redis.call('GET', K('seq:user')) or '0')
end
local function friend_check(me, uid, field)
  if not user_known(uid) then return reject(404, 'unknown user', field) end
  if redis.call('SISMEMBER', K('f:' .. me), uid) == 0 then return reject(403, 'not a friend', field) end
  return nil
end
-- schedule.py's slots_opened and open_slot, on seconds elapsed since the run's start
local function slots_opened(m, el)
  local t = el - m.first
  if t < 0 then return 0 end
  local k = math.floor(t / m.intv) + 1
  if m.count >= 0 and k > m.count then k = m.count end
  return k
end
local function open_slot(m, el)
  local t = el - m.first
  if t < 0 then return nil end
  local k = math.floor(t / m.intv)
  if (m.count >= 0 and k >= m.count) or t - k * m.intv >= m.dur then return nil end
  return k
end
local function new_drop(pool, opens, closes, eodds, codds, slot)
  local id = redis.call('INCR', K('seq:drop'))
  redis.call('HSET', K('d:' .. id), 'pool', pool, 'left', pool, 'opens', fmt(opens), 'closes', fmt(closes),
             'eodds', eodds, 'codds', codds, 'slot', slot)
  return id
end
-- Make every scheduled slot opened by now into a drop, in opening order (drop ids follow the clock).
local function catch_up(m, now)
  local done = tonumber(redis.call('GET', K('slots')) or '0')
  local k = slots_opened(m, now - m.started)
  if done >= k then return end
  for j = done, k - 1 do
    local opens = m.started + m.first + j * m.intv
    redis.call('HSET', K('slotdrop'), j, new_drop(m.pools[(j % #m.pools) + 1], opens, opens + m.dur, m.eodds, m.codds, j))
  end
  redis.call('SET', K('slots'), k)
end
-- The drop open now, for a writer: an admin drop wins over the schedule.
local function open_drop(m, now)
  catch_up(m, now)
  local a = redis.call('GET', K('admin'))
  if a and now < tonumber(redis.call('HGET', K('d:' .. a), 'closes')) then return a end
  local k = open_slot(m, now - m.started)
  if k == nil then return nil end
  local id = redis.call('HGET', K('slotdrop'), k)
  if id and now < tonumber(redis.call('HGET', K('d:' .. id), 'closes')) then return id end
  return nil
end
