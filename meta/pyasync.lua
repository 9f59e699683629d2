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
---key is looked up as an item first); `obj[k]` with a non-string `k` is Python indexing
---(0-based, negatives work); calling the proxy calls the object (a trailing `py.kw{}`
---gives keyword arguments); `obj:meth(a)` is `obj.meth(a)`. `#obj` is `len`,
---`tostring(obj)` is `str`, comparison and arithmetic/bitwise operators are Python's
---(`^` is `**`, binary `~` is `^`). `pairs(obj)` gives key, value over a mapping and
---1-based position, value over other iterables. Can be a `<close>` variable.
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
---@class pyasync.Kwargs

---Any Lua value that converts to a Python object.
---@alias pyasync.Value nil|boolean|number|string|table|function|pyasync.Object|pyasync.View|pyasync.Tensor|pyasync.Queue

---Something `py.await` accepts: a Python coroutine, Future, Task or object with
---`__await__` (as a proxy), or a pyasync `Task`.
---@alias pyasync.Awaitable pyasync.Object|pyasync.Task

------------------------------------------------------------------------------
-- Errors
------------------------------------------------------------------------------

---A Python exception raised as a Lua error.
---`tostring(e)` is `"Type: message"` followed by the Python traceback.
---@class pyasync.PyError
---@field type string The exception's class name, e.g. `"ValueError"`, `"CancelledError"`, `"TimeoutError"`.
---@field message string `str(exc)`.
---@field traceback string The formatted Python traceback.
---@field exception pyasync.Object The exception object.

------------------------------------------------------------------------------
-- Async
------------------------------------------------------------------------------

---Options for `py.await` (and `py.start`).
---@class pyasync.AwaitOpts
---@field timeout? number Seconds; on expiry the Python side is cancelled and a `TimeoutError` is raised.
---@field cancel? pyasync.CancelToken Cancelling it cancels the await (`CancelledError`).

---Options for `py.init`.
---@class pyasync.InitOpts
---@field path? string[] Directories prepended to `sys.path`, in order.
---@field loop? "asyncio"|"uvloop" The event loop of the loop thread (default `"asyncio"`).

---Options for `py.aiter`.
---@class pyasync.AiterOpts
---@field prefetch? integer Let the loop thread run up to this many items ahead (default: lazy, one step at a time).

---Options for `py.gather` (table form); `timeout` and `cancel` apply to all awaitables.
---@class pyasync.GatherOpts: pyasync.AwaitOpts
---@field return_exceptions? boolean Put `PyError`s in the results instead of raising the first.

---A running piece of async work: a Python awaitable started with `py.start` or
---`tg:start`, or a Lua task from `py.spawn`.
---@class pyasync.Task
local Task = {}

---Waits for the task (yields in a task, drives the loop elsewhere) and returns its
---result(s), or raises its error. A task can be awaited once; a second await raises an
---error. A timeout or cancelled token in `opts` cancels the task.
---@param opts? pyasync.AwaitOpts
---@return any ...
function Task:await(opts) end

---Requests cancellation. For a Python task the coroutine sees `CancelledError`.
---@param msg? string
---@return boolean pending `true` if the task was still pending, `false` if it had finished (nothing is done then).
function Task:cancel(msg) end

---@return boolean done `true` once the task has finished (result, error or cancellation).
function Task:done() end

---@return boolean cancelled `true` if the task finished by cancellation.
function Task:cancelled() end

---Returns the stored result of a finished task or raises its stored error; works
---any number of times. Raises "task is not done" on an unfinished task.
---@return any ...
function Task:result() end

---A cancellation token for `py.await{cancel = tok}` and `q:items(tok)`.
---@class pyasync.CancelToken
---@field cancelled boolean `true` once `tok:cancel()` has been called.
local CancelToken = {}

---Cancels the token: awaits using it are cancelled now, later ones raise
---`CancelledError` without entering Python.
function CancelToken:cancel() end

---The group object passed to the function of `py.taskgroup`.
---@class pyasync.TaskGroup
local TaskGroup = {}

---Starts `aw` in the group (a pyasync `Task` is adopted). The group awaits it: read
---the result with `t:result()`.
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

---An `asyncio.Queue` on the loop thread; passed to Python it is that queue.
---Waiting methods yield in a task and drive the loop elsewhere.
---@class pyasync.Queue
local Queue = {}

---Puts `v`, waiting while the queue is full.
---@param v any
function Queue:put(v) end

---Removes and returns an item, waiting while the queue is empty. On a closed,
---empty queue returns `nil`.
---@return any
function Queue:get() end

---Puts `v` or raises a `PyError` of type `QueueFull`.
---@param v any
function Queue:put_nowait(v) end

---Returns an item or raises a `PyError` of type `QueueEmpty`.
---@return any
function Queue:get_nowait() end

---@return integer
function Queue:qsize() end

---@return boolean
function Queue:empty() end

---@return boolean
function Queue:full() end

---Closes the queue: getters drain the remaining items, then see the end.
function Queue:close() end

---Generic-for over the items until the queue is closed and drained, or `token` is cancelled.
---`for v in q:items() do ... end`
---@param token? pyasync.CancelToken
---@return fun(): any
function Queue:items(token) end

------------------------------------------------------------------------------
-- Zero-copy memory
------------------------------------------------------------------------------

---A view on a buffer: from `py.buffer` (a Python object's memory) or `py.array`
---(Lua-owned memory). Indexes are 1-based. Can be a `<close>` variable.
---@class pyasync.View
---@field [integer] number Element `i` of a 1-D view (readable and writable).
---@field ndim integer Number of dimensions.
---@field shape integer[] Dimensions.
---@field strides integer[] Strides in bytes.
---@field format string Struct format string, e.g. `"d"`, `"f"`, `"B"`.
---@field itemsize integer Bytes per element.
---@field nbytes integer Total bytes.
---@field readonly boolean Whether writes are refused.
---@operator len: integer
local View = {}

---Element at 1-based indexes, one per dimension.
---@param ... integer
---@return number
function View:get(...) end

---Stores the last argument at the 1-based indexes given before it: `v:set(i, j, x)`.
---@param ... number
function View:set(...) end

---A copy of the contents as a Lua string.
---@return string
function View:tobytes() end

---Stores `x` in every element.
---@param x number
function View:fill(x) end

---The data address.
---@return lightuserdata
function View:ptr() end

---Releases the buffer now; later use raises an error.
function View:release() end

---A tensor imported with `py.from_dlpack`. CPU tensors index like a `View`.
---Passed to Python it has `__dlpack__`/`__dlpack_device__`.
---@class pyasync.Tensor
---@field [integer] number Element `i` of a 1-D CPU tensor.
---@field device string The device, e.g. `"cpu"`, `"cuda:0"`.
---@field dtype string `"float32"`, `"float64"`, `"int64"`, `"uint8"`, `"bool"`, ...
---@field ndim integer Number of dimensions.
---@field shape integer[] Dimensions.
---@field strides integer[] Strides in elements.
---@operator len: integer
local Tensor = {}

---Element at 1-based indexes (CPU tensors).
---@param ... integer
---@return number
function Tensor:get(...) end

---Stores the last argument at the 1-based indexes given before it (CPU tensors).
---@param ... number
function Tensor:set(...) end

---The data address (a device address for GPU tensors).
---@return lightuserdata
function Tensor:ptr() end

---Releases the tensor now; the producer's DLPack deleter runs.
function Tensor:release() end

------------------------------------------------------------------------------
-- The module
------------------------------------------------------------------------------

---@class pyasync
---@field builtins pyasync.Object The `builtins` module.
---@field main pyasync.Object The `__main__` module.
---@field version string The version of pyasync.
---@field python_version string The version of the embedded Python.
---@field None pyasync.Object A proxy holding `None`; usable as a table value.
---@field LuaError pyasync.Object The Python class `pyasync.LuaError` raised in Python for Lua errors.
local py = {}

-- §1 Python code and modules

---Runs Python statements in `ns` (a module or dict proxy; default `__main__`).
---@param src string
---@param ns? pyasync.Object
function py.exec(src, ns) end

---Evaluates a Python expression in `ns` (default `__main__`) and returns its value.
---@param expr string
---@param ns? pyasync.Object
---@return any
function py.eval(expr, ns) end

---Imports a module. A missing module raises a `PyError` (`ModuleNotFoundError`).
---@param name string
---@return pyasync.Object
function py.import(name) end

---Configures pyasync. `path` can be given at any time; `loop` before the first async
---operation (afterwards it raises an error). `PYASYNC_LOOP=uvloop` does the same as
---`loop = "uvloop"`.
---@param opts pyasync.InitOpts
---@return pyasync
function py.init(opts) end

-- §2 Values

---A Python `bytes` object holding the bytes of `s` (given a proxy: `bytes(obj)`).
---@param s string|pyasync.Object
---@return pyasync.Object
function py.bytes(s) end

---A Python `list` made from the sequence `t` (given a proxy: `list(obj)`).
---@param t table|pyasync.Object
---@return pyasync.Object
function py.list(t) end

---A Python `dict` made from the table `t` (`py.dict{}` is an empty dict; `{}` converts to
---a list; a sequence gets the keys 1..n). Given a proxy: `dict(obj)`.
---@param t? table|pyasync.Object
---@return pyasync.Object
function py.dict(t) end

---A Python `tuple` of the arguments.
---@param ... any
---@return pyasync.Object
function py.tuple(...) end

---Keyword arguments for a call: `f(a, py.kw{x = 1})` is `f(a, x=1)`.
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

---`obj[k]`, for any key including strings.
---@param obj pyasync.Object
---@param k any
---@return any
function py.item(obj, k) end

---`obj[k] = v`.
---@param obj pyasync.Object
---@param k any
---@param v any
function py.setitem(obj, k, v) end

---`del obj[k]`.
---@param obj pyasync.Object
---@param k any
function py.delitem(obj, k) end

---Calls `obj(*args, **kwargs)`; `args` may carry an `n` field when it holds `nil`s.
---Never drops a receiver argument.
---@param obj pyasync.Object
---@param args? any[]
---@param kwargs? table<string, any>
---@return any
function py.call(obj, args, kwargs) end

---Generic-for over a Python iterable: `for v in py.iter(obj) do ... end`.
---@param obj pyasync.Object
---@return fun(): any
function py.iter(obj) end

---Deep copy of a list/tuple/dict (and nested ones) into Lua tables.
---@param obj pyasync.Object
---@return table
function py.totable(obj) end

---The name of the Python type of `obj`, e.g. `"list"` (for a Lua value: of its conversion).
---@param obj any
---@return string
function py.type(obj) end

---Python's `isinstance(obj, cls)`.
---@param obj any
---@param cls pyasync.Object
---@return boolean
function py.isinstance(obj, cls) end

---Python identity, `a is b`.
---@param a any
---@param b any
---@return boolean
function py.is(a, b) end

---Drops the proxy's reference now; later use raises "released Python object".
---@param obj pyasync.Object
function py.release(obj) end

-- §4 Errors

---Whether `e` is a `PyError`; with a name, whether the exception's class (or a base
---class) has that name; with a class proxy, `isinstance(e.exception, cls)`.
---@param e any
---@param name_or_class? string|pyasync.Object
---@return boolean
function py.iserror(e, name_or_class) end

-- §5 Async

---Result of `aw`. In a task it yields until done; elsewhere it drives the loop until
---done. Raises a `PyError` on failure, `TimeoutError` on `opts.timeout`,
---`CancelledError` on `opts.cancel`.
---@param aw pyasync.Awaitable
---@param opts? pyasync.AwaitOpts
---@return any
function py.await(aw, opts) end

---Schedules `aw` on the Python loop now and returns a `Task` at once (a pyasync `Task`
---is returned unchanged). `opts` is reserved.
---@param aw pyasync.Awaitable
---@param opts? table
---@return pyasync.Task
function py.start(aw, opts) end

---Runs `fn(...)` as a new Lua task, started at the scheduler's next turn.
---@param fn async fun(...: any): ...
---@param ... any
---@return pyasync.Task
function py.spawn(fn, ...) end

---Runs `fn(...)` as a task and drives the loop until it and the tasks it spawned
---finish; returns its results or raises its error. Inside a task: spawns and awaits `fn`.
---@param fn async fun(...: any): ...
---@param ... any
---@return any ...
function py.run(fn, ...) end

---Sleeps `s` seconds on the libuv loop (yields in a task, drives the loop elsewhere).
---`opts.cancel` ends it early with `CancelledError`.
---@param s number
---@param opts? pyasync.AwaitOpts
function py.sleep(s, opts) end

---Runs awaitables concurrently on the Python loop; returns their results in order,
---with the count in field `n`. Either `py.gather(aw1, aw2, ...)` or
---`py.gather({aw1, aw2, ...}, opts)`. The first error cancels the rest and is raised,
---unless `opts.return_exceptions`.
---@param aws pyasync.Awaitable[]
---@param opts? pyasync.GatherOpts
---@return table results
---@overload fun(...: pyasync.Awaitable): table
function py.gather(aws, opts) end

---Calls `fn(tg)` and waits for every task started with `tg:start`; the first failure
---cancels the rest and is raised (asyncio.TaskGroup semantics).
---@param fn async fun(tg: pyasync.TaskGroup)
function py.taskgroup(fn) end

---A new cancellation token.
---@return pyasync.CancelToken
function py.CancelToken() end

-- §6 Async generators, queues, callbacks

---Generic-for over an async iterable: `for v in py.aiter(gen()) do ... end`.
---Leaving the loop early awaits `aclose()`.
---@param x pyasync.Object
---@param opts? pyasync.AiterOpts
---@return fun(): any
function py.aiter(x, opts) end

---A new `asyncio.Queue` on the loop thread (`maxsize` absent or <= 0: unbounded).
---@param maxsize? integer
---@return pyasync.Queue
function py.Queue(maxsize) end

---A Python async callable: `await f(x)` in Python runs `fn(x)` as a Lua task and
---resolves to its first result, or raises `LuaError`.
---@param fn async fun(...: any): ...
---@return pyasync.Object
function py.async_fn(fn) end

-- §7 Zero-copy memory

---A `View` on the PEP 3118 buffer of `obj`. `"r"`: read-only; `"w"`: writable (error
---if the buffer is read-only); default: writable when allowed.
---@param obj pyasync.Object
---@param mode? "r"|"w"
---@return pyasync.View
function py.buffer(obj, mode) end

---A Lua-owned 1-D array: `n` zeroed elements or the values of a table. `fmt` is a
---struct format character (`"d"`, `"f"`, `"i"`, `"q"`, `"B"`, ...).
---@param fmt string
---@param n_or_table integer|number[]
---@return pyasync.View
function py.array(fmt, n_or_table) end

---A `Tensor` from `obj.__dlpack__()`.
---@param obj pyasync.Object
---@return pyasync.Tensor
function py.from_dlpack(obj) end

return py
