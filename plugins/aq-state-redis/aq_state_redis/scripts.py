"""Lua scripts: each runs atomically on the server, so a check and the write it guards cannot be
split by another client. Every key a script touches is passed in KEYS and shares one hash tag."""

# KEYS[1] state hash; ARGV[1] expected version, ARGV[2] new version, ARGV[3] document JSON.
COMPARE_AND_SET = """
local current = redis.call('HGET', KEYS[1], 'v')
if current then
  if current ~= ARGV[1] then return 0 end
elseif ARGV[1] ~= '0' then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
return 1
"""

# KEYS[1] receipts stream, KEYS[2] head; ARGV[1] seq, ARGV[2] expected head ('' for seq 1),
# ARGV[3] new head, ARGV[4] digest, ARGV[5] envelope. Returns {1, ''} or {0, current head}.
APPEND = """
local head = redis.call('GET', KEYS[2])
if ARGV[2] == '' then
  if head then return {0, head} end
elseif head ~= ARGV[2] then
  return {0, head or ''}
end
redis.call('XADD', KEYS[1], ARGV[1] .. '-0', 'seq', ARGV[1], 'digest', ARGV[4], 'envelope', ARGV[5])
redis.call('SET', KEYS[2], ARGV[3])
return {1, ''}
"""
