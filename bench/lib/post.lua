-- wrk request generator for `POST /api/resource/v1/`: every request creates a resource with a name no other
-- request of this run uses (names are unique per owner, and a duplicate would answer 409). The name is
-- `<prefix>-<thread>-<counter>`; the prefix comes from the script argument (`wrk ... URL -- PREFIX`) so the
-- warm-up and each measurement never collide with each other or with earlier runs on the same database.
-- bench/run appends report.lua to this file for the done() hook.
local thread_count = 0

setup = function(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
end

init = function(args)
  prefix = args[1] or "bench"
  -- `-- PREFIX keyed`: every create also carries an Idempotency-Key of its own (its name), as a careful client's.
  keyed = args[2] == "keyed"
  counter = 0
  headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
end

request = function()
  counter = counter + 1
  local name = string.format("%s-%d-%d", prefix, thread_index, counter)
  local body = string.format('{"name":"%s"}', name)
  if keyed then
    headers["Idempotency-Key"] = name
    return wrk.format("POST", nil, headers, body)
  end
  -- nil path and headers: the URL's path and wrk's headers (-H), which carry the bearer token and content type.
  return wrk.format("POST", nil, nil, body)
end
