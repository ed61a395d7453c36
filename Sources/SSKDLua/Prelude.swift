// The Lua half of the host: docs index and `help`, the REPL's value printer, plugin registries
// and loader, and the small helpers plugins are written with (sskd.schedule, sskd.options,
// sskd.metric). Plain Lua: errors here are ordinary Lua errors, caught by the pcall that runs it.
enum Prelude {
    static let source = #"""
local types, libs = __sskd_types, __sskd_libs
__sskd_types, __sskd_libs = nil, nil

sskd = sskd or {}
sskd.version = "0.1.0"
local docs = setmetatable({}, {__mode = "k"})  -- value -> {name=, sig=, summary=}
local byname = {}                               -- "torch.zeros" / "Tensor:sum" -> doc
sskd.docs, sskd.types, sskd.libs = docs, types, libs

for lname, lib in pairs(libs) do
  for fname, e in pairs(lib.functions) do
    local q = (lname == "_G") and fname or (lname .. "." .. fname)
    local d = {name = q, sig = e.sig, summary = e.summary}
    byname[q] = d
    if not docs[e.fn] then docs[e.fn] = d end
  end
end
for tname, t in pairs(types) do
  for mname, e in pairs(t.methods) do
    local d = {name = tname .. ":" .. mname, sig = e.sig, summary = e.summary}
    byname[d.name] = d
    docs[e.fn] = d  -- a method's own doc wins over torch.* aliases
  end
end

--- Attaches help to a Lua value (a function, a plugin, a helper).
function sskd.document(value, name, sig, summary)
  local d = {name = name, sig = sig or name, summary = summary or ""}
  docs[value] = d
  byname[name] = d
  return value
end

--- Checks an options table against defaults: unknown keys and wrong types are errors naming `fname`.
function sskd.options(opts, defaults, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to '%s' (table of options expected, got %s)"):format(fname, type(opts)), 3)
  end
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil and not (type(defaults.__optional) == "table" and defaults.__optional[k]) then
      local names = {}
      for n in pairs(defaults) do if n ~= "__optional" then names[#names + 1] = n end end
      if type(defaults.__optional) == "table" then for n in pairs(defaults.__optional) do names[#names + 1] = n end end
      table.sort(names)
      error(("unknown option '%s' to '%s' (expected %s)"):format(tostring(k), fname, table.concat(names, ", ")), 3)
    end
    local want = defaults[k]
    if want ~= nil and want ~= false and type(want) ~= type(v) then
      error(("bad option '%s' to '%s' (%s expected, got %s)"):format(k, fname, type(want), type(v)), 3)
    end
    out[k] = v
  end
  out.__optional = nil
  return out
end

--- The value of `metric` in the last record of a metric history (see docs/lua-api.md, "History").
function sskd.metric(history, metric, fname)
  if type(history) ~= "table" then
    error(("bad argument #1 to '%s' (history table expected, got %s)"):format(fname or "step", type(history)), 3)
  end
  local last = history[#history]
  if last == nil then return nil end
  local v = last[metric]
  if v == nil then
    error(("%s: metric '%s' is not in the history record of epoch %s"):format(fname or "stopper", metric, tostring(last.epoch)), 3)
  end
  if type(v) ~= "number" then
    error(("%s: metric '%s' must be a number, got %s"):format(fname or "stopper", metric, type(v)), 3)
  end
  return v
end

--- A canonical string of a plain value: JSON with sorted keys, integers as integers and other
--- numbers with 17 significant digits, so equal settings give equal strings whatever the order
--- they were written in (the key of sskd.model_cache). Functions, userdata, NaN and infinities
--- are errors naming where they are.
function sskd.canonical(v)
  local function esc(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
      local named = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
      return named[c] or ("\\u%04x"):format(c:byte())
    end) .. '"'
  end
  local function enc(x, path, depth)
    local t = type(x)
    if t == "string" then return esc(x)
    elseif t == "boolean" then return tostring(x)
    elseif t == "number" then
      if math.type(x) == "integer" then return tostring(x) end
      if x ~= x or x == math.huge or x == -math.huge then error(("sskd.canonical: %s is %s, which has no canonical form"):format(path, tostring(x)), 0) end
      if x == math.floor(x) and math.abs(x) < 2^53 then return ("%d"):format(x) end
      return ("%.17g"):format(x)
    elseif t == "table" then
      if depth > 32 then error("sskd.canonical: " .. path .. " nests too deeply (a cycle?)", 0) end
      local n, keys = #x, {}
      for k in pairs(x) do
        if math.type(k) == "integer" and k >= 1 and k <= n then -- the array part
        elseif type(k) == "string" then keys[#keys + 1] = k
        else error(("sskd.canonical: %s has a key of type %s (only strings and 1..n)"):format(path, type(k)), 0) end
      end
      if #keys == 0 and (n > 0 or next(x) == nil) then
        local parts = {}
        for i = 1, n do parts[i] = enc(x[i], path .. "[" .. i .. "]", depth + 1) end
        return "[" .. table.concat(parts, ",") .. "]"
      end
      if n > 0 then error(("sskd.canonical: %s mixes array items and named fields"):format(path), 0) end
      table.sort(keys)
      local parts = {}
      for i, k in ipairs(keys) do parts[i] = esc(k) .. ":" .. enc(x[k], path .. "." .. k, depth + 1) end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    error(("sskd.canonical: %s is a %s, which has no canonical form (use plain values: strings, numbers, booleans, tables)"):format(path, t), 0)
  end
  return enc(v, "value", 0)
end
sskd.document(sskd.canonical, "sskd.canonical", "sskd.canonical(value) -> string",
  "canonical JSON of a plain value (sorted keys): equal settings give equal strings (keys of sskd.model_cache)")

--- A parameterised schedule: a callable table. `s(epoch, history)` evaluates it; `s{...}`
--- returns a copy with other parameters (unknown names are errors).
function sskd.schedule(spec)
  assert(type(spec) == "table" and type(spec.fn) == "function" and type(spec.name) == "string",
         "sskd.schedule{name=, params=, fn=function(p, epoch, history) ... end}")
  local mt = {}
  local function make(params)
    local s = {params = params, name = spec.name, doc = spec.doc}
    return setmetatable(s, mt)
  end
  mt.__call = function(self, a, history)
    if type(a) == "table" and getmetatable(a) == nil then
      return make(sskd.options(a, self.params, "schedules." .. spec.name))
    end
    if math.type(a) == nil then
      error(("bad argument #1 to 'schedules.%s' (epoch number or table of parameters expected, got %s)"):format(spec.name, type(a)), 2)
    end
    local v = spec.fn(self.params, a, history)
    if type(v) ~= "number" then error(("schedules.%s returned %s instead of a number"):format(spec.name, type(v)), 2) end
    return v
  end
  mt.__tostring = function(self)
    local keys = {}
    for k in pairs(self.params) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. " = " .. tostring(self.params[k]) end
    return "schedules." .. spec.name .. "{" .. table.concat(parts, ", ") .. "}"
  end
  return make(spec.params or {})
end

-- Plugin registries (docs/lua-api.md, "Plugins").
schedules = schedules or {}
losses = losses or {}
stoppers = stoppers or {}
model_variants = model_variants or {}
sskd.plugins = {schedules = {}, losses = {}, stoppers = {}, models = {}}
local registries = {schedules = schedules, losses = losses, stoppers = stoppers, models = model_variants}
local registry_names = {schedules = "schedules", losses = "losses", stoppers = "stoppers", models = "model_variants"}

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

--- The leading `--` comment lines of a file: the first is the signature, the rest the summary.
local function header_doc(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for line in f:lines() do
    local text = line:match("^%-%-+%s?(.*)$")
    if not text then break end
    lines[#lines + 1] = text
    if #lines >= 12 then break end
  end
  f:close()
  if #lines == 0 then return nil end
  return lines[1], table.concat(lines, "\n", 2)
end

-- A model_variants plugin is wrapped so that the models it builds record how they were built
-- (m.constructor, written to a run's model.json for sskd predict): "model_variants.<name>" and
-- the options it was called with. An error the plugin raises at its caller's level (error(msg, 2),
-- sskd.options) still names the caller's file:line: the plugin runs under xpcall, whose C frame
-- has no position, and the caller's position is put in front of such a message.
local set_constructor, getinfo = __sskd_set_constructor, debug.getinfo
__sskd_set_constructor = nil
local function model_variant(name, make)
  local function build(opts, ...)
    local caller = getinfo(2, "Sl")  -- build is called directly or tail-called: level 2 is the caller
    local ok, m = xpcall(make, function(e)
      if type(e) == "string" and not e:match("^[^\n]-:%d+: ") and caller and caller.currentline > 0 then
        return caller.short_src .. ":" .. caller.currentline .. ": " .. e
      end
      return e
    end, opts, ...)
    if not ok then error(m, 0) end
    set_constructor(m, "model_variants." .. name, opts)
    return m
  end
  if type(make) == "function" then return build end
  -- A callable table keeps its fields.
  return setmetatable({}, {__index = make, __call = function(_, opts, ...) return build(opts, ...) end})
end

--- Loads one plugin file of `kind` under `name` (called by the host for every file).
function sskd._load_plugin(kind, name, path)
  local reg = registries[kind]
  if reg == nil then error("unknown plugin kind '" .. tostring(kind) .. "'", 0) end
  if rawget(reg, name) ~= nil then
    error(("%s: duplicate %s plugin '%s' (already defined by %s); this one is ignored")
      :format(path, kind, name, sskd.plugins[kind][name] or "the host"), 0)
  end
  local chunk, err = loadfile(path, "t")
  if not chunk then error(err, 0) end
  local ok, value = pcall(chunk)
  if not ok then error(tostring(value), 0) end
  if not callable(value) then
    error(("%s: a %s plugin must return a function or a callable table, got %s"):format(path, kind, type(value)), 0)
  end
  if kind == "models" then value = model_variant(name, value) end
  rawset(reg, name, value)
  sskd.plugins[kind][name] = path
  local sig, summary = header_doc(path)
  if type(value) == "table" and type(rawget(value, "doc")) == "string" and not sig then sig = value.doc end
  sskd.document(value, registry_names[kind] .. "." .. name, sig or (registry_names[kind] .. "." .. name), summary or "")
  return true
end

-- Printing values (the REPL and help).
local function short(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    return "{...}"
  end
  if t == "function" then local d = docs[v]; return d and ("function " .. d.name) or tostring(v) end
  return tostring(v)
end

--- A readable one-level rendering of a value: arrays as {1, 2, 3}, records as {a = 1, ...}.
function sskd.repr(v)
  if type(v) == "function" then
    local d = docs[v]
    return d and ("function " .. d.name .. "  -- " .. d.sig) or tostring(v)
  end
  if type(v) ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  local parts, n = {}, #v
  for i = 1, math.min(n, 20) do parts[#parts + 1] = short(v[i]) end
  if n > 20 then parts[#parts + 1] = ("... (%d entries)"):format(n) end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do
    if i > 30 then parts[#parts + 1] = ("... (%d more keys)"):format(#keys - 30); break end
    local ks = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or ("[" .. short(k) .. "]")
    parts[#parts + 1] = ks .. " = " .. short(v[k])
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- help
local function type_help(tname)
  local t = types[tname]
  print(tname .. ": " .. t.doc)
  local names = {}
  for n in pairs(t.fields) do names[#names + 1] = n end
  table.sort(names)
  if #names > 0 then
    print("fields:")
    for _, n in ipairs(names) do print(("  x.%-16s %s"):format(n, t.fields[n])) end
  end
  names = {}
  for n in pairs(t.methods) do names[#names + 1] = n end
  table.sort(names)
  print("methods:")
  for _, n in ipairs(names) do print(("  %-44s %s"):format(t.methods[n].sig, t.methods[n].summary)) end
end

local function namespace_help(name, tbl)
  local lib = libs[name]
  if lib and lib.doc ~= "" then print(name .. ": " .. lib.doc) end
  local names = {}
  for k in pairs(tbl) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    local d = docs[tbl[k]]
    if d then print(("  %-52s %s"):format(d.sig, (d.summary or ""):match("^[^\n]*")))
    else print(("  %s.%s  (%s)"):format(name, k, type(tbl[k]))) end
  end
end

local function resolve(path)
  local v = _G
  for part in path:gmatch("[^%.:]+") do
    if type(v) ~= "table" then return nil end
    v = rawget(v, part)
  end
  return v
end

--- help(x): documentation of a function, a type, an object, a namespace or a plugin.
function help(x)
  if x == nil then
    print("sskd " .. sskd.version .. ": Lua 5.4 over Swift tensors. PyTorch names; dims and indices are 0-based.")
    print("namespaces: torch, F, nn, models, optim (as available); plugins: schedules, losses, stoppers, model_variants")
    print("try: help(torch), help(F), help('Tensor'), help(torch.zeros), help(x) for a tensor x")
    return
  end
  if type(x) == "string" then
    if types[x] then return type_help(x) end
    local d = byname[x]
    if d then print(d.sig); if d.summary ~= "" then print("  " .. d.summary) end; return end
    local v = resolve(x)
    if v ~= nil then
      if type(v) == "table" and docs[v] == nil then return namespace_help(x, v) end
      return help(v)
    end
    print("no help for '" .. x .. "'")
    return
  end
  local d = docs[x]
  if d then
    print(d.sig)
    if d.summary and d.summary ~= "" then print("  " .. d.summary:gsub("\n", "\n  ")) end
    if type(x) == "table" and x.params then print("  parameters: " .. sskd.repr(x.params)) end
    return
  end
  if type(x) == "userdata" then
    local mt = getmetatable(x)
    local name = type(mt) == "table" and rawget(mt, "__name")
    if name and types[name] then return type_help(name) end
  end
  if type(x) == "table" then
    for name in pairs(libs) do
      if (name == "_G" and _G or resolve(name)) == x then return namespace_help(name, x) end
    end
    for kind, reg in pairs(registries) do
      if reg == x then return namespace_help(registry_names[kind], x) end
    end
    print(sskd.repr(x))
    return
  end
  print("no help for this " .. type(x) .. " value")
end
-- optim.Adam{lr = 1e-3} (no parameters): a spec the trainer builds with spec(params).
if type(optim) == "table" then
  for _, name in ipairs{"SGD", "Adam", "AdamW"} do
    local make = rawget(optim, name)
    if make then
      local d = docs[make]
      local spec_mt = {
        __call = function(self, params) return make(params, self.options) end,
        __tostring = function(self) return "optim." .. name .. sskd.repr(self.options) .. " (a spec: call it with parameters)" end,
      }
      local function wrapper(params, opts)
        if type(params) == "table" and getmetatable(params) == nil and params[1] == nil and opts == nil and next(params) ~= nil then
          local copy = {}
          for k, v in pairs(params) do copy[k] = v end
          return setmetatable({optimizer = name, options = copy}, spec_mt)
        end
        return make(params, opts)
      end
      optim[name] = wrapper
      sskd.document(wrapper, d.name, d.sig, d.summary .. "; optim." .. name .. "{...} without parameters returns a spec the trainer builds with spec(params)")
    end
  end
end

-- Hot reloading (`sskd run --watch`, docs/lua-api.md "Watch"): plugin files and modules loaded
-- with sskd.hot that change on disk are reloaded at the next epoch boundary of fit/distill; a
-- reload that fails keeps the old code and says why.
sskd.watching = false
local watched = {}
sskd.reload_log = {}

--- Watches `path`: `reload(options)` runs when its modification time changes.
function sskd._watch(path, reload)
  watched[path] = {mtime = __sskd_mtime(path), reload = reload}
end

--- Called by fit/distill at each epoch boundary with the call's options table.
function sskd._epoch_boundary(options)
  if not sskd.watching then return end
  for path, w in pairs(watched) do
    local m = __sskd_mtime(path)
    if m ~= w.mtime then
      w.mtime = m
      local ok, err = pcall(w.reload, options)
      local msg = ok and ("sskd: reloaded " .. path) or ("sskd: reload of " .. path .. " failed, keeping the old code: " .. tostring(err))
      sskd.reload_log[#sskd.reload_log + 1] = msg
      print(msg)
    end
  end
end

--- Starts watching every loaded plugin file. A reloaded plugin replaces its registry entry, and
--- the running fit/distill call's alpha/loss/stop options that held the old plugin get the new one.
function sskd._watch_plugins()
  for kind, paths in pairs(sskd.plugins) do
    for name, path in pairs(paths) do
      sskd._watch(path, function(options)
        local reg = registries[kind]
        local old = rawget(reg, name)
        local chunk, err = loadfile(path, "t")
        if not chunk then error(err, 0) end
        local ok, value = pcall(chunk)
        if not ok then error(tostring(value), 0) end
        if not callable(value) then error(("a %s plugin must return a function or a callable table, got %s"):format(kind, type(value)), 0) end
        if kind == "models" then value = model_variant(name, value) end
        rawset(reg, name, value)
        local sig, summary = header_doc(path)
        sskd.document(value, registry_names[kind] .. "." .. name, sig or (registry_names[kind] .. "." .. name), summary or "")
        if type(options) == "table" then
          for _, key in ipairs{"alpha", "loss", "stop"} do
            if rawequal(rawget(options, key), old) then rawset(options, key, value) end
          end
        end
      end)
    end
  end
end

--- sskd.hot(path) -> table of forwarders: `H.name(...)` calls field `name` of the table the file
--- returns, as last loaded. With --watch, an edited file is reloaded at the next epoch boundary,
--- so `distill{alpha = H.alpha, on_epoch_end = H.report}` picks up new code without a restart.
function sskd.hot(path)
  local function load_table()
    local chunk, err = loadfile(path, "t")
    if not chunk then error(err, 0) end
    local ok, t = pcall(chunk)
    if not ok then error(tostring(t), 0) end
    if type(t) ~= "table" then error(("%s must return a table of functions, got %s"):format(path, type(t)), 0) end
    return t
  end
  local current = load_table()
  local forwarders = {}
  sskd._watch(path, function() current = load_table() end)
  return setmetatable({}, {
    __index = function(_, k)
      local f = forwarders[k]
      if not f then
        f = function(...)
          local v = current[k]
          if not callable(v) then error(("%s: '%s' is not a function in the current version"):format(path, tostring(k)), 2) end
          return v(...)
        end
        forwarders[k] = f
      end
      return f
    end,
    __tostring = function() return "sskd.hot(" .. path .. ")" end,
  })
end
sskd.document(sskd.hot, "sskd.hot", "sskd.hot(path) -> table", "a module of functions that `sskd run --watch` reloads at epoch boundaries when the file changes")

-- nn.Module{...}: modules written in Lua (a constructor; see LuaModule.swift).
if type(nn) == "table" then
  local function Module(class)
    if type(class) ~= "table" then
      error(("bad argument #1 to 'nn.Module' (class table expected, got %s)"):format(type(class)), 2)
    end
    if type(class.forward) ~= "function" then
      error("bad argument #1 to 'nn.Module' (the class table needs a forward(self, x) function)", 2)
    end
    if class.init ~= nil and type(class.init) ~= "function" then error("bad argument #1 to 'nn.Module' (init must be a function)", 2) end
    local name = class.name or "LuaModule"
    if type(name) ~= "string" then error("bad argument #1 to 'nn.Module' (name must be a string)", 2) end
    local new = sskd._new_module
    return setmetatable({class = class, name = name}, {
      __call = function(_, ...)
        local m = new(class, name)
        if class.init then class.init(m, ...) end
        return m
      end,
      __tostring = function() return "nn.Module class " .. name end,
    })
  end
  nn.Module = Module
  sskd.document(Module, "nn.Module", "nn.Module{name=, init=function(self, ...) end, forward=function(self, x) end} -> constructor",
    "a module written in Lua: in init assign children (self.conv = nn.Conv2d(...)), parameters (tensors that require grad) and buffers; extra functions are methods")
end

sskd.document(help, "help", "help([x])", "documentation of a function, type, object, namespace or plugin")
sskd.document(sskd.schedule, "sskd.schedule", "sskd.schedule{name=, params={...}, fn=function(p, epoch, history) end}", "a parameterised schedule (callable table)")
sskd.document(sskd.options, "sskd.options", "sskd.options(opts, defaults, fname) -> table", "checks an options table against defaults")
sskd.document(sskd.metric, "sskd.metric", "sskd.metric(history, name [, fname]) -> number", "the named metric of the last history record")
sskd.document(sskd.repr, "sskd.repr", "sskd.repr(v) -> string", "a readable rendering of a value (the REPL's printer)")
"""#
}
