-- early_exit.lua - leaving a py.aiter loop early (here with break) awaits
-- the generator's aclose(): its finally block has run by the next
-- statement.  An exhausted generator is not aclose()d.
local py = require "pyasync"

py.exec([[
import asyncio

events = []

async def resource_stream():
    try:
        for i in range(1000):
            await asyncio.sleep(0)
            yield i
    except GeneratorExit:
        events.append("aclose() reached the generator")
        raise
    finally:
        events.append("finally: resource released")
]])

for item in py.aiter(py.main.resource_stream()) do
  print("got " .. item)
  if item >= 3 then
    print("break at " .. item)
    break
  end
end
-- the next statement: cleanup has already happened
for _, e in ipairs(py.totable(py.main.events)) do print(e) end
