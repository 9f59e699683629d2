---@meta pyasync

-- LuaLS type definitions for pyasync: Lua 5.4 with CPython's sync and async world.
-- Add this directory to "workspace.library" in .luarc.json. Nothing here runs.
-- See docs/reference.md for the full description of each function.

------------------------------------------------------------------------------
-- Proxies and values
------------------------------------------------------------------------------

---A proxy: a Python object held by Lua.
---
---`obj.name` / `obj.name = v` are `getattr`/`setattr` (for `dict` instances a string
---key is looked up as an item first, then as an attribute; a missing one raises
---`AttributeError`; assigning `nil` stores `None`). `obj[k]` with a non-string `k` is
---Python indexing (0-based, negatives work; a float key stays a float). Calling the
---proxy calls the object (a trailing `py.kw{}` gives keyword arguments);
---`obj:meth(a)` is `obj.meth(a)` (the receiver is not passed twice). `#obj` is `len`,
---`tostring(obj)` is `str`, comparison and arithmetic/bitwise operators are Python's
---(`^` is `**`, binary `~` is `^`; `proxy == 1` is always `false` because Lua calls
---`__eq` only for two userdata). `pairs(obj)` gives key, value over a mapping and
---1-based position, value over other iterables (a `None` key comes as `py.None`).
---Can be a `<close>` variable (released at scope exit).
---@class pyasync.Object: userdata
---@field [string] any
---@field [any] any
---@operator len: integer
---@operator unm: any
---@operator bnot: any
---@operator add(any): any
---@operator sub(any): any
---@operator mul(any): any
---@operator div(any): any
---@operator idiv(any): any
---@operator mod(any): any
---@operator pow(any): any
---@operator band(any): any
---@operator bor(any): any
---@operator bxor(any): any
---@operator shl(any): any
---@operator shr(any): any
---@overload fun(...: any): any

---Keyword arguments for a call, made by `py.kw{...}`; must be the last argument.
---@class pyasync.Kwargs: table<string, any>

---Any Lua value that converts to a Python object (coroutines and foreign userdata do not).
---@alias pyasync.Value nil|boolean|number|string|table|function|pyasync.Object|pyasync.View|pyasync.Tensor|pyasync.Queue|pyasync.PyError

---Something `py.await` accepts: a Python coroutine, Future, Task or object with
---`__await__` (as a proxy), or a pyasync `Task`.
---@alias pyasync.Awaitable pyasync.Object|pyasync.Task

---A Python awaitable whose result, what `py.await` returns, is `T`. Definitions
---written by `pyasync-stubs` give coroutine functions this type: `async def f() -> int`
---returns a `pyasync.AwaitableOf<integer>`, and `py.await(f())` is an `integer`.
---It is a proxy, so `pyasync.Awaitable` includes it.
---@class pyasync.AwaitableOf<T>: pyasync.Object

---A Python async iterable (an async generator, or an object with `__aiter__`) whose
---items are `T`, for `py.aiter`. Definitions written by `pyasync-stubs` give async
---generator functions this type: `for v in py.aiter(gen()) do` types `v` as `T`.
---@class pyasync.AsyncIterableOf<T>: pyasync.Object

---An element of a View or Tensor: integer, float or boolean depending on the dtype.
---@alias pyasync.Element integer|number|boolean

------------------------------------------------------------------------------
-- Errors
------------------------------------------------------------------------------

---A Python exception raised as a Lua error.
---`tostring(e)` is `"Type: message"` followed by the Python traceback. Passed back to
---Python, a PyError is its exception object.
---@class pyasync.PyError
---@field type string The exception's class name, e.g. `"ValueError"`, `"CancelledError"`, `"TimeoutError"`, `"QueueShutDown"`.
---@field message string `str(exc)`.
---@field traceback string The formatted Python traceback (for a `LuaError`, followed by the Lua traceback).
---@field exception pyasync.Object The exception object.

------------------------------------------------------------------------------
-- Options
------------------------------------------------------------------------------

---Options for waits: `py.await`, `t:await`, `py.sleep`, `q:put`, `q:get`.
---@class pyasync.AwaitOpts
---@field timeout? number Seconds; on expiry the wait is cancelled (the Python side gets `CancelledError`, its `finally` runs) and a `TimeoutError` is raised.
---@field cancel? pyasync.CancelToken Cancelling it cancels the wait (`CancelledError`); an already cancelled token raises at once without entering Python.

---Options for `py.init`.
---@class pyasync.InitOpts
---@field path? string[]|string Directories prepended to `sys.path`, in order (`path[1]` first). Any time.
---@field loop? "asyncio"|"uvloop" The event loop of the loop thread (default `"asyncio"`, or `PYASYNC_LOOP`). Asking for the other kind once a loop runs is an error.

---Options for `py.aiter`.
---@class pyasync.AiterOpts
---@field prefetch? integer A positive integer: the loop thread may run ahead by up to this many items (at most 65536), which Lua takes without a round trip; the pump resumes once Lua has taken half (default: lazy, one step at a time).

---Options for `py.gather` (table form). `timeout` and `cancel` apply to all awaitables:
---when they fire, every awaitable is cancelled and the gather raises once all have finished.
---@class pyasync.GatherOpts: pyasync.AwaitOpts
---@field return_exceptions? boolean Put `PyError`s in the results instead of raising the first.

---The results of `py.gather`, in order; `n` is their number (a `None` result leaves a hole).
---@class pyasync.GatherResults
---@field n integer
---@field [integer] any

------------------------------------------------------------------------------
-- Async
------------------------------------------------------------------------------

---A running piece of async work: a Python awaitable started with `py.start` or
---`tg:start`, or a Lua task from `py.spawn`/`tg:spawn`. `py.Task` is the metatable.
---`tostring(t)` is `pyasync.Task(KIND, STATE)` with kind `lua`/`python` and state
---`pending`/`done`/`failed`/`cancelled`.
---@class pyasync.Task
local Task = {}

---Waits for the task (yields in a task, drives the loop elsewhere) and returns its
---result(s), or raises its error. A task can be awaited once; a second await raises
---"Task already awaited (...)". A timeout or cancelled token in `opts` cancels the task
---itself and waits for it to finish.
---@async
---@param opts? pyasync.AwaitOpts
---@return any ...
function Task:await(opts) end

---Requests cancellation. For a Python task the coroutine sees `CancelledError`. A Lua
---task that has not started never starts; a started one gets `CancelledError` at its
---current wait (or its next one, if the current wait completes anyway).
---@param msg? string The message of the `CancelledError`.
---@return boolean pending `true` if the task was still pending, `false` if it had finished (nothing is done then).
function Task:cancel(msg) end

---@return boolean done `true` once the task has finished (result, error or cancellation).
function Task:done() end

---@return boolean cancelled `true` if the task finished by cancellation.
function Task:cancelled() end

---Returns the stored result(s) of a finished task or raises its stored error; works
---any number of times and marks a failure as retrieved. Raises "task is not done" on
---an unfinished task.
---@return any ...
function Task:result() end

---A cancellation token for `opts.cancel` and `q:items(tok)`.
---@class pyasync.CancelToken
---@field cancelled boolean `true` once `tok:cancel()` has been called.
local CancelToken = {}

---Cancels the token: waits using it are cancelled now, later ones raise
---`CancelledError` without entering Python. Cancelling twice does nothing.
function CancelToken:cancel() end

---The group object passed to the function of `py.taskgroup`; `py.TaskGroup` is its metatable.
---@class pyasync.TaskGroup
local TaskGroup = {}

---Starts `aw` in the group (a pyasync `Task` is adopted). The group awaits it: read
---the result with `t:result()`. Raises "task group is finished" after the group ended.
---@param aw pyasync.Awaitable
---@return pyasync.Task
function TaskGroup:start(aw) end

---Runs `fn(...)` as a Lua task in the group: `tg:start(py.spawn(fn, ...))`.
---@param fn async fun(...: any): ...
---@param ... any
---@return pyasync.Task
function TaskGroup:spawn(fn, ...) end

------------------------------------------------------------------------------
-- Queues
------------------------------------------------------------------------------

---An `asyncio.Queue` on the loop thread; passed to Python it is that queue (a
---`pyasync.Queue`, the `asyncio.Queue` subclass with `close()` and `closed`).
---Waiting methods yield in a task and drive the loop elsewhere. A `None` item comes
---back as `py.None`. Errors are `PyError`s of type `QueueFull`, `QueueEmpty`,
---`QueueShutDown`. `tostring(q)` is e.g. `pyasync.Queue(3 items)`.
---@class pyasync.Queue
local Queue = {}

---Puts `v`, waiting while the queue is full. Raises `QueueShutDown` once closed.
---@async
---@param v any
---@param opts? pyasync.AwaitOpts
function Queue:put(v, opts) end

---Removes and returns an item, waiting while the queue is empty. Returns `nil` once the
---queue is closed and drained.
---@async
---@param opts? pyasync.AwaitOpts
---@return any
function Queue:get(opts) end

---Puts `v` or raises a `PyError` of type `QueueFull` (`QueueShutDown` once closed).
---@param v any
function Queue:put_nowait(v) end

---Returns an item or raises a `PyError` of type `QueueEmpty` (`QueueShutDown` on a
---closed, drained queue).
---@return any
function Queue:get_nowait() end

---@return integer
function Queue:qsize() end

---@return boolean
function Queue:empty() end

---@return boolean
function Queue:full() end

---Closes the queue: getters drain the remaining items, then see the end; later puts
---raise `QueueShutDown`. Closing twice is harmless.
function Queue:close() end

---@return boolean closed `true` once the queue was closed (from Lua or Python).
function Queue:closed() end

---Generic-for over the items until the queue is closed and drained, or `token` is cancelled.
---`for v in q:items() do ... end`
---@async
---@param token? pyasync.CancelToken
---@return fun(): any
function Queue:items(token) end

------------------------------------------------------------------------------
-- Zero-copy memory
------------------------------------------------------------------------------

---A view on a buffer: from `py.buffer` (a Python object's memory) or `py.array`
---(Lua-owned, reference-counted memory). Indexes are 1-based. Can be a `<close>`
---variable. Passed to Python: the viewed object (`py.buffer`) or a `pyasync.Array`
---(`py.array`) that exports the buffer protocol and `__dlpack__`.
---@class pyasync.View
---@field [integer] pyasync.Element Element `i` of a 1-D view (readable and writable).
---@field ndim integer Number of dimensions.
---@field shape integer[] Dimensions.
---@field strides integer[] Strides in bytes.
---@field format string Struct format string, e.g. `"d"`, `"f"`, `"B"`.
---@field dtype string Element type name, e.g. `"float64"`, `"int32"`, `"uint8"`, `"bool"`.
---@field itemsize integer Bytes per element.
---@field nbytes integer Total bytes.
---@field readonly boolean Whether writes are refused.
---@operator len: integer
local View = {}

---Element at 1-based indexes, one per dimension.
---@param ... integer
---@return pyasync.Element
function View:get(...) end

---Stores the last argument at the 1-based indexes given before it: `v:set(i, j, x)`.
---@param ... integer|pyasync.Element
function View:set(...) end

---A copy of the contents as a Lua string, in C order.
---@return string
function View:tobytes() end

---A copy of the contents as nested Lua tables (the element itself for a 0-D view).
---@return pyasync.Element[]|table|pyasync.Element
function View:totable() end

---Stores `x` in every element.
---@param x pyasync.Element
function View:fill(x) end

---The data address.
---@return lightuserdata
function View:ptr() end

---Releases the view now; later use raises "released View". Harmless twice.
function View:release() end

---A tensor imported with `py.from_dlpack`. Tensors in host memory (`cpu`,
---`cuda_host`, `rocm_host`) index like a `View`. Passed to Python it is a
---`pyasync.Array` with `__dlpack__`/`__dlpack_device__`. Can be a `<close>` variable.
---@class pyasync.Tensor
---@field [integer] pyasync.Element Element `i` of a 1-D host-memory tensor.
---@field device string The device: `"cpu"`, `"cuda:0"`, `"cuda_host"`, `"rocm:0"`, `"cuda_managed:0"`, ...; `"deviceT:N"` for unknown types.
---@field device_type integer The DLPack device type (`kDLCPU` = 1, `kDLCUDA` = 2, ...).
---@field device_id integer The DLPack device id.
---@field dtype string `"float32"`, `"float64"`, `"float16"`, `"bfloat16"`, `"int64"`, `"uint8"`, `"bool"`, ...
---@field format? string The struct format code of the dtype; `nil` where there is none (bfloat16, complex).
---@field ndim integer Number of dimensions.
---@field shape integer[] Dimensions.
---@field strides integer[] Strides in elements.
---@field itemsize integer Bytes per element.
---@field nbytes integer Total bytes.
---@field byte_offset integer The DLTensor's `byte_offset`: the first element is at `t:ptr() + byte_offset`.
---@field readonly boolean Always `false`.
---@operator len: integer
local Tensor = {}

---Element at 1-based indexes (host-memory tensors).
---@param ... integer
---@return pyasync.Element
function Tensor:get(...) end

---Stores the last argument at the 1-based indexes given before it (host-memory tensors).
---@param ... integer|pyasync.Element
function Tensor:set(...) end

---Stores `x` in every element (host-memory tensors).
---@param x pyasync.Element
function Tensor:fill(x) end

---A copy of the contents as a Lua string, in C order (host-memory tensors).
---@return string
function Tensor:tobytes() end

---A copy of the contents as nested Lua tables (host-memory tensors).
---@return pyasync.Element[]|table|pyasync.Element
function Tensor:totable() end

---The DLTensor's `data` address (a device address for GPU tensors).
---@return lightuserdata
function Tensor:ptr() end

---Releases the tensor now; the producer's DLPack deleter runs once nothing else
---(no Python object made from it) uses the memory.
function Tensor:release() end

---Debug counters from `py._buffer_stats()`.
---@class pyasync.BufferStats
---@field blocks integer Live memory records of Views, arrays and Tensors.
---@field exports integer DLPack capsules pyasync produced whose deleter has not run.
---@field imports integer Consumed DLPack tensors whose producer deleter has not run.

------------------------------------------------------------------------------
-- The module
------------------------------------------------------------------------------

---@class pyasync
---@field builtins pyasync.Object The `builtins` module.
---@field main pyasync.Object The `__main__` module.
---@field version string The version of pyasync, e.g. `"0.1.0"`.
---@field python_version string The version of the embedded Python, e.g. `"3.11.2"`.
---@field None pyasync.Object A proxy holding `None`; usable as a table value.
---@field LuaError pyasync.Object The Python class `pyasync.LuaError` (an `Exception` subclass) raised in Python for Lua errors; instances have `lua_traceback`.
---@field Task table The metatable of `pyasync.Task` values.
---@field TaskGroup table The metatable of `pyasync.TaskGroup` values.
local py = {}

-- §1 Python code and modules

---Runs Python statements in `ns` (a module or dict proxy; default `__main__`).
---A `src` containing a NUL byte is refused.
---@param src string
---@param ns? pyasync.Object
function py.exec(src, ns) end

---Evaluates a Python expression in `ns` (default `__main__`) and returns its value.
---@param expr string
---@param ns? pyasync.Object
---@return any
function py.eval(expr, ns) end

---Imports a module (a dotted name gives the submodule). A missing module raises a
---`PyError` (`ModuleNotFoundError`).
---@param name string
---@return pyasync.Object
function py.import(name) end

---Configures pyasync; returns the module. `path` can be given at any time; `loop`
---takes effect when the loop thread starts. `PYASYNC_LOOP=uvloop` does the same as
---`loop = "uvloop"`.
---@param opts? pyasync.InitOpts
---@return pyasync
function py.init(opts) end

-- §2 Values

---A Python `bytes` object holding the bytes of `s` (a number is turned into a string
---first; given a proxy: `bytes(obj)`).
---@param s string|number|pyasync.Object
---@return pyasync.Object
function py.bytes(s) end

---A Python `list` made from `t[1]` … `t[#t]` (`nil` becomes `None`); given a proxy: `list(obj)`.
---@param t table|pyasync.Object
---@return pyasync.Object
function py.list(t) end

---A Python `dict` made from the table `t` (`py.dict{}` and `py.dict()` are empty dicts;
---a sequence gets the keys 1..n). Given a proxy: `dict(obj)`.
---@param t? table|pyasync.Object
---@return pyasync.Object
function py.dict(t) end

---A Python `tuple` of the arguments.
---@param ... any
---@return pyasync.Object
function py.tuple(...) end

---Keyword arguments for a call: `f(a, py.kw{x = 1})` is `f(a, x=1)`. Keys must be strings.
---@param t table<string, any>
---@return pyasync.Kwargs
function py.kw(t) end

-- §3 Proxies

---`getattr(obj, name)`, never looking at dict items.
---@param obj pyasync.Object
---@param name string
---@return any
function py.getattr(obj, name) end

---`setattr(obj, name, v)`.
---@param obj pyasync.Object
---@param name string
---@param v any
function py.setattr(obj, name, v) end

---`hasattr(obj, name)`.
---@param obj pyasync.Object
---@param name string
---@return boolean
function py.hasattr(obj, name) end

---`obj[k]`, for any key including strings. The key is required.
---@param obj pyasync.Object
---@param k any
---@return any
function py.item(obj, k) end

---`obj[k] = v` (`nil` stores `None`). Key and value are required.
---@param obj pyasync.Object
---@param k any
---@param v any
function py.setitem(obj, k, v) end

---`del obj[k]`. The key is required.
---@param obj pyasync.Object
---@param k any
function py.delitem(obj, k) end

---Calls `obj(*args, **kwargs)`; `args` may carry an `n` field when it holds `nil`s.
---Passes the arguments exactly as given (never drops a receiver argument).
---@param obj pyasync.Object
---@param args? any[]
---@param kwargs? table<string, any>
---@return any
function py.call(obj, args, kwargs) end

---Generic-for over a Python iterable: `for v in py.iter(obj) do ... end`. A `None`
---element comes as `py.None`.
---@param obj pyasync.Object
---@return fun(it: pyasync.Object): any
---@return pyasync.Object
function py.iter(obj) end

---Deep copy of a list/tuple/dict (and nested ones) into Lua tables; other values are
---converted as usual, a Lua value is returned unchanged. `None`/NaN dict keys are left
---out; nesting deeper than 200 (so any cycle) raises `ValueError`.
---@param obj any
---@return any
function py.totable(obj) end

---The name of the Python type of `obj`, e.g. `"list"` (for a Lua value: of its conversion).
---@param obj any
---@return string
function py.type(obj) end

---Python's `isinstance(obj, cls)`; `obj` may be a Lua value (its conversion is tested).
---@param obj any
---@param cls pyasync.Object A class or a tuple of classes.
---@return boolean
function py.isinstance(obj, cls) end

---Python identity, `a is b`.
---@param a any
---@param b any
---@return boolean
function py.is(a, b) end

---Drops the proxy's reference now; later use raises "released Python object".
---Harmless twice.
---@param obj pyasync.Object
function py.release(obj) end

-- §4 Errors

---Whether `e` is a `PyError`; with a name, whether a class in the exception's MRO has
---that `__name__` or `__qualname__`; with a class proxy, `isinstance(e.exception, cls)`.
---@param e any
---@param name_or_class? string|pyasync.Object
---@return boolean
function py.iserror(e, name_or_class) end

-- §5 Async

---Result of `aw` (a coroutine, Future, Task, object with `__await__`,
---`concurrent.futures.Future`, or pyasync `Task`). In a task it yields until done;
---elsewhere it drives the loop until done. Raises a `PyError` on failure, `TimeoutError` on `opts.timeout`,
---`CancelledError` on `opts.cancel`. Refused (with an error) where Lua cannot yield
---inside a task, in a Lua function the loop thread calls synchronously, and in a luv
---callback.
---@async
---@generic T
---@param aw pyasync.AwaitableOf<T>
---@param opts? pyasync.AwaitOpts
---@return T
---@overload async fun(aw: pyasync.Awaitable, opts?: pyasync.AwaitOpts): any
function py.await(aw, opts) end

---Schedules `aw` on the Python loop now and returns a `Task` at once (a pyasync `Task`
---is returned unchanged). `opts` is ignored (reserved).
---@param aw pyasync.Awaitable
---@param opts? table
---@return pyasync.Task
function py.start(aw, opts) end

---Runs `fn(...)` as a new Lua task, started at the scheduler's next turn.
---@param fn async fun(...: any): ...
---@param ... any
---@return pyasync.Task
function py.spawn(fn, ...) end

---Runs `fn(...)` as a task and drives the loop until it and the Lua tasks still
---running finish; returns its results or raises its error. Inside a task: runs `fn`
---as a task and waits for it and the tasks spawned under it only.
---@async
---@param fn async fun(...: any): ...
---@param ... any
---@return any ...
function py.run(fn, ...) end

---Sleeps `s` seconds on the libuv loop (yields in a task, drives the loop elsewhere).
---`opts.cancel` ends it early with `CancelledError`, `opts.timeout` with `TimeoutError`.
---@async
---@param s number
---@param opts? pyasync.AwaitOpts
function py.sleep(s, opts) end

---Runs awaitables (and pyasync Tasks) concurrently; returns their results in order,
---with the count in field `n`. Either `py.gather(aw1, aw2, ...)` or
---`py.gather({aw1, aw2, ...}, opts)`. The first error is raised at once and the rest
---are cancelled, unless `opts.return_exceptions`.
---@async
---@param aws pyasync.Awaitable[]
---@param opts? pyasync.GatherOpts
---@return pyasync.GatherResults results
---@overload async fun(...: pyasync.Awaitable): pyasync.GatherResults
function py.gather(aws, opts) end

---Calls `fn(tg)` and waits for every task started with `tg:start`/`tg:spawn`; the first
---failure cancels the rest and is raised itself (asyncio.TaskGroup semantics).
---@async
---@param fn async fun(tg: pyasync.TaskGroup)
function py.taskgroup(fn) end

---A new cancellation token.
---@return pyasync.CancelToken
function py.CancelToken() end

---The asyncio event loop that the loop thread runs (read it to start the loop thread).
---`asyncio.get_event_loop()` in Python code that Lua calls returns it; its
---`call_soon`/`call_later`/`call_at` are safe from any thread and wake it.
---@type pyasync.Object
py.loop = nil

---Calls the Python callable `fn(...)` on the loop thread, inside the running loop
---(so `asyncio.get_running_loop()` and loop-only APIs work), and returns its result;
---waits as `py.await` does. A trailing `py.kw{}` gives keywords. Example:
---`py.with(py.onloop(asyncio.timeout, 1), fn)`.
---@async
---@param fn pyasync.Object|function
---@param ... any
---@return any
function py.onloop(fn, ...) end

---A live task, as `py.tasks()` lists it.
---@class pyasync.TaskInfo
---@field kind "lua"|"python"
---@field name string `"main"`, `"task FILE:LINE"` (Lua) or the asyncio task name (Python).
---@field state "running"|"waiting"|"ready"
---@field traceback string Where it is suspended.
---@field task? pyasync.Task The Lua task.
---@field coro? string The Python coroutine's qualified name.

---The live tasks, Lua first, then the loop's Python tasks.
---@return pyasync.TaskInfo[]
function py.tasks() end

-- §6 Async generators, queues, callbacks

---Generic-for over an async iterable: `for v in py.aiter(gen()) do ... end`.
---Leaving the loop early awaits `aclose()`. A `None` item comes as `py.None`.
---@async
---@generic T
---@param x pyasync.AsyncIterableOf<T>
---@param opts? pyasync.AiterOpts
---@return fun(state: any): T
---@return any state
---@return nil
---@return any closing
---@overload async fun(x: pyasync.Object, opts?: pyasync.AiterOpts): fun(state: any): any
function py.aiter(x, opts) end

---A new `asyncio.Queue` on the loop thread (`maxsize` an integer; absent or <= 0: unbounded).
---@param maxsize? integer
---@return pyasync.Queue
function py.Queue(maxsize) end

---A Python async callable: `await f(x, k=v)` in Python runs `fn(x, {k = v})` as a Lua
---task and resolves to its first result, or raises `LuaError`.
---@param fn async fun(...: any): ...
---@return pyasync.Object
function py.async_fn(fn) end

---Python's `with` / `async with` as a call: enters `cm` (awaits `__aenter__` when it has
---one, else calls `__enter__`), calls `fn(value, ...)` and exits on every path, passing
---the error (a `PyError` as its exception, a cancellation as `CancelledError`, other Lua
---errors as `pyasync.LuaError`). A true exit result suppresses the error (then nothing is
---returned); otherwise the same error value is re-raised. Returns `fn`'s results.
---@async
---@param cm pyasync.Object
---@param fn async fun(value: any, ...: any): ...
---@param ... any
---@return any ...
function py.with(cm, fn, ...) end

---Enters `cm` for a to-be-closed variable: `local s <close> = py.enter(cm)`. Returns a
---proxy of the entered value (a proxy even for a str, number or None) whose close exits
---`cm` with the error unwinding, if any; second, the entered value converted as usual
---(`local d <close>, path = py.enter(tempfile.TemporaryDirectory())`).
---@async
---@param cm pyasync.Object
---@return pyasync.Object closer
---@return any value
function py.enter(cm) end

-- §7 Zero-copy memory

---A `View` on the PEP 3118 buffer of `obj` (a Lua string gives a read-only view of a
---`bytes`). `"r"`: read-only; `"w"`: writable (`BufferError` if the buffer is
---read-only); default: writable when allowed.
---@param obj pyasync.Object|pyasync.View|pyasync.Tensor|string
---@param mode? "r"|"w"
---@return pyasync.View
function py.buffer(obj, mode) end

---A Lua-owned 1-D array: `n` zeroed elements or the values of a table. `fmt` is a
---struct format code (`"d"`, `"f"`, `"i"`, `"q"`, `"B"`, `"?"`, ...; optional `@ = <`
---prefix) or a dtype name (`"float32"`, `"int64"`, ...).
---@param fmt string
---@param n_or_table integer|pyasync.Element[]
---@return pyasync.View
function py.array(fmt, n_or_table) end

---A `Tensor` from `obj.__dlpack__()` (or from a DLPack capsule, View or Tensor).
---@param obj pyasync.Object|pyasync.View|pyasync.Tensor
---@return pyasync.Tensor
function py.from_dlpack(obj) end

---Debug counters of live memory records and DLPack capsules.
---@return pyasync.BufferStats
function py._buffer_stats() end

return py
