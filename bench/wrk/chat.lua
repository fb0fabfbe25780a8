-- POST a chat request; print one JSON line with req/s and latency percentiles.
-- usage: wrk ... -s chat.lua <url> -- <model> <stream:0|1> ["Header: value"]...
local model = "bench-model"
local stream = false

function init(args)
  model = args[1] or model
  stream = args[2] == "1"
  local s = ""
  if stream then s = ',"stream":true' end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for i = 3, #args do  -- a virtual key, a peer gateway's routing header
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}],"max_tokens":32,"temperature":0' .. s .. '}'
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
