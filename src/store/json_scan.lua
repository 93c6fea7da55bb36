-- Scanning JSON text in Lua without decoding it (Redis's cjson would round numbers and turn
-- `[]` into `{}`): the pieces merge.lua and list.lua share. src/store/upstash.rs puts this
-- file in front of each script (one EVAL body each, so one SHA each).
local byte, sub, find = string.byte, string.sub, string.find

-- The index just past the string that starts at i (s[i] is '"').
local function string_end(s, i)
  local j = i + 1
  while true do
    local q = find(s, '["\\]', j)
    if not q then error('unterminated string') end
    if byte(s, q) == 34 then return q + 1 end
    j = q + 2
  end
end

-- The index just past the value that starts at i.
local function value_end(s, i)
  local c = byte(s, i)
  if c == 34 then return string_end(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local k = find(s, '[%[%]{}"]', j)
      if not k then error('unterminated value') end
      local d = byte(s, k)
      if d == 34 then
        j = string_end(s, k)
      else
        if d == 123 or d == 91 then depth = depth + 1 else depth = depth - 1 end
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  local _, e = find(s, '^[%w%.%+%-]+', i)
  if not e then error('bad value') end
  return e + 1
end

local function skip_ws(s, i)
  local _, e = find(s, '^[ \t\r\n]*', i)
  return e + 1
end
