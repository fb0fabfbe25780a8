-- chat.lua's request with a prompt never sent before (a nonce of this wrk process and a
-- counter), so that a response cache misses every time; wrk builds each request (chat.lua's
-- is built once). The nonce is read here, not passed in: a retried run must not repeat prompts.
-- usage: wrk ... -s unique.lua <url> -- <model> <stream:0|1> ["Header: value"]...
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "chat.lua")
local chat_init = init
local nonce, counter, before, after = "", 0, "", ""

function init(args)
  chat_init(args)
  local random = assert(io.open("/dev/urandom", "rb"))
  nonce = random:read(8):gsub(".", function(c) return string.format("%02x", c:byte()) end)
  random:close()
  before, after = wrk.body:match('^(.*"Say hello%.)(.*)$')
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, before .. " " .. nonce .. "-" .. counter .. after)
end
