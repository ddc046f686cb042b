-- wrk script for the benchmark: request /log?id=N with a new id per request (the same job as
-- ringscrape's), and stop each thread after its share of WRK_N requests.
local total = tonumber(os.getenv("WRK_N") or "500000")
local threads = {}
local id = 0

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  share = math.floor(total / nthreads)
  id = index * share
  done = 0
end

function request()
  local path = "/log?id=" .. id
  id = id + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  done = done + 1
  if done >= share then
    wrk.thread:stop()
  end
end
