-- torch.save / torch.load: exact round trips of tensors and tables, metadata, errors, atomic writes.
local T = require("testlib")

local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p '" .. dir .. "'")
local written = {}
local function path(name) local p = dir .. "/" .. name; written[#written + 1] = p; return p end
local function roundtrip(v, name, meta)
  local p = path(name or "v.safetensors")
  torch.save(v, p, meta)
  return torch.load(p)
end
--- Exact equality of two tensors: shape and every value.
local function same_tensor(a, b, what)
  T.check(torch.is_tensor(a), (what or "value") .. " should be a Tensor, got " .. type(a))
  T.shape(a, b.shape)
  if a:numel() > 0 then T.eq(a:ne(b):sum():item(), 0, (what or "tensor") .. " values") end
end
--- The file names in the scratch folder (to find left-over temporary files).
local function listing()
  local names = {}
  local ls = io.popen("ls -a '" .. dir .. "'")
  for n in ls:lines() do if n ~= "." and n ~= ".." then names[#names + 1] = n end end
  ls:close()
  return table.concat(names, " ")
end

T.test("a nested table of tensors and plain values comes back exactly", function()
  local w = torch.randn(2, 3)
  local v = {
    model = {weight = w, bias = torch.zeros(3)},
    history = {{epoch = 1, loss = 0.25}, {epoch = 2, loss = 0.125}},
    name = "student", done = false, steps = 1200,
  }
  local r, info = roundtrip(v)
  same_tensor(r.model.weight, w, "model.weight")
  same_tensor(r.model.bias, v.model.bias, "model.bias")
  T.eq(#r.history, 2); T.eq(r.history[2].epoch, 2); T.eq(r.history[2].loss, 0.125)
  T.eq(r.name, "student"); T.eq(r.done, false); T.eq(r.steps, 1200)
  T.eq(info.format, "sskd")
  T.eq(info.dtypes["model.weight"], "F32"); T.eq(info.dtypes["model.bias"], "F32")
  T.eq(next(info.inexact), nil, "nothing converted inexactly")
end)

T.test("empty tensors and a 0-d tensor keep their shapes", function()
  local r = roundtrip{a = torch.zeros(0), b = torch.zeros(2, 0), c = torch.zeros(0, 3, 0), s = torch.tensor(2.5)}
  T.shape(r.a, {0}); T.shape(r.b, {2, 0}); T.shape(r.c, {0, 3, 0})
  T.shape(r.s, {}); T.eq(r.s:item(), 2.5)
end)

T.test("a tensor saved on its own comes back as a tensor", function()
  local x = torch.arange(6):reshape(2, 3)
  local r, info = roundtrip(x, "single.safetensors")
  same_tensor(r, x)
  T.eq(info.format, "sskd"); T.eq(info.dtypes.tensor, "F32")
  -- An empty one too.
  T.shape(roundtrip(torch.zeros(2, 0), "single_empty.safetensors"), {2, 0})
end)

T.test("integers stay integers and floats stay floats, bit for bit", function()
  local v = {3, 3.0, -0.0, 0.1, 1/3, 1e-310, 1e308, math.maxinteger, math.mininteger, 1/0, -1/0, 2^53 + 1}
  local r = roundtrip(v)
  T.eq(#r, #v)
  for i = 1, #v do
    T.eq(math.type(r[i]), math.type(v[i]), "entry " .. i .. " type")
    T.eq(r[i], v[i], "entry " .. i)
  end
  T.eq(1 / r[3], -1/0, "-0.0 keeps its sign")
  local nan = roundtrip{x = 0/0}.x
  T.check(nan ~= nan, "NaN comes back as NaN")
end)

T.test("booleans and strings: unicode, control characters, NUL and bytes that are not UTF-8", function()
  local v = {yes = true, no = false, s = "héllo wörld ✓ 日本 🚀", ctl = "tab\tnew\nline \"q\" \\ \1", nul = "a\0b", raw = "\xff\xfe\x00\x80", empty = ""}
  local r = roundtrip(v)
  for k, x in pairs(v) do T.eq(r[k], x, k) end
end)

T.test("arrays stay arrays; sparse and mixed tables keep their keys", function()
  local r = roundtrip{list = {10, 20, 30}, sparse = {[1] = "a", [3] = "c"}, mixed = {1, 2, x = "y"}, empty = {}}
  T.eq(#r.list, 3); T.eq(r.list[3], 30)
  T.eq(r.sparse[1], "a"); T.eq(r.sparse[2], nil); T.eq(r.sparse[3], "c")
  T.eq(r.mixed[1], 1); T.eq(r.mixed[2], 2); T.eq(r.mixed.x, "y")
  T.eq(type(r.empty), "table"); T.eq(next(r.empty), nil)
end)

T.test("keys with dots and numeric keys round-trip without ambiguity", function()
  local a, b, c, d = torch.tensor{1}, torch.tensor{2}, torch.tensor{3}, torch.tensor{4}
  local v = {["a.b"] = a, a = {b = b}, [1] = "integer one", ["1"] = "string one", [1.5] = "float", [true] = "bool",
             nested = {[2] = c, ["2"] = d}}
  local r, info = roundtrip(v)
  same_tensor(r["a.b"], a, "['a.b']"); same_tensor(r.a.b, b, "a.b")
  T.eq(r[1], "integer one"); T.eq(r["1"], "string one"); T.eq(r[1.5], "float"); T.eq(r[true], "bool")
  same_tensor(r.nested[2], c, "nested[2]"); same_tensor(r.nested["2"], d, "nested['2']")
  -- Every tensor is in the file once, under a readable and unique name.
  local names = {}
  for k in pairs(info.dtypes) do names[#names + 1] = k end
  table.sort(names)
  T.eq(table.concat(names, " "), "a.b a.b#2 nested.2 nested.2#2")
end)

T.test("a tensor referenced twice is stored once and comes back as one tensor", function()
  local w = torch.randn(3)
  local r, info = roundtrip{w, {again = w}}
  T.check(r[1] == r[2].again, "the same Tensor object")
  local n = 0
  for _ in pairs(info.dtypes) do n = n + 1 end
  T.eq(n, 1)
end)

T.test("requires_grad is kept; values are saved, not the graph", function()
  local x = torch.randn(2):requires_grad_()
  local y = x * 2
  local r = roundtrip{x = x, y = y}
  T.eq(r.x.requires_grad, true); T.eq(r.x.is_leaf, true)
  T.eq(r.y.requires_grad, true); T.eq(r.y.is_leaf, true)
  same_tensor(r.y, y:detach())
end)

T.test("metadata is kept as strings and returned in info.metadata", function()
  local _, info = roundtrip({x = 1}, "meta.safetensors", {note = "héllo", epoch = 3, lr = 0.5, best = true})
  T.eq(info.metadata.note, "héllo"); T.eq(info.metadata.epoch, "3"); T.eq(info.metadata.lr, "0.5"); T.eq(info.metadata.best, "true")
  T.eq(info.metadata["sskd.torch.save"], nil, "sskd's own description is not the caller's metadata")
  T.raises(function() torch.save({}, path("m.safetensors"), {["sskd.torch.save"] = "x"}) end, "metadata key 'sskd.torch.save' is reserved")
  T.raises(function() torch.save({}, path("m.safetensors"), {f = print}) end, "metadata 'f' must be a string, number or boolean")
  T.raises(function() torch.save({}, path("m.safetensors"), "meta") end, "bad argument #3 to 'torch.save' (table of metadata expected")
end)

T.test("values that cannot be saved are errors naming where they are", function()
  local p = path("bad.safetensors")
  T.raises(function() torch.save({a = {f = print}}, p) end, "value.a.f is a function, which cannot be saved")
  T.raises(function() torch.save({m = nn.Linear(2, 2)}, p) end, "value.m is a Module, which cannot be saved (save its weights with m:save(path)")
  T.raises(function() torch.save({list = {1, coroutine.create(print)}}, p) end, "value.list[2] is a thread")
  T.raises(function() torch.save({["a key"] = {io.stdout}}, p) end, 'value["a key"][1] is a')
  T.raises(function() torch.save({[{}] = 1}, p) end, "value has a key of type table")
  T.raises(function() torch.save({s = schedules.paper_gradual}, p) end, "value.s is a table with a metatable")
  T.raises(function() torch.save(print, p) end, "value is a function")
  T.raises(function() torch.save(nil, p) end, "bad argument #1 to 'torch.save' (Tensor or table expected, got nil)")
  T.raises(function() torch.save({}, nil) end, "bad argument #2 to 'torch.save' (string expected, got nil)")
  local cyclic = {inner = {}}
  cyclic.inner.back = cyclic
  T.raises(function() torch.save(cyclic, p) end, "value.inner.back is a cyclic reference")
  local deep = {}
  local cur = deep
  for _ = 1, 150 do cur.next = {}; cur = cur.next end
  T.raises(function() torch.save(deep, p) end, "nests more than 100 tables deep")
  T.check(io.open(p) == nil, "no file is written by a failed save")
  -- A table shared without a cycle is fine (saved as copies).
  local shared = {1, 2}
  local r = roundtrip{a = shared, b = shared}
  T.eq(r.a[2], 2); T.eq(r.b[2], 2)
end)

T.test("a failed save leaves the existing file untouched and no temporary file behind", function()
  local p = path("keep.safetensors")
  torch.save({x = torch.tensor{1, 2, 3}, tag = "original"}, p)
  T.raises(function() torch.save({x = torch.zeros(5), f = print}, p) end, "value.f is a function")
  T.raises(function() torch.save({x = torch.zeros(5)}, p, {["sskd.x"] = "1"}) end, "is reserved")
  local r = torch.load(p)
  T.eq(r.tag, "original"); T.values(r.x, {1, 2, 3})
  T.check(not listing():find(".tmp-", 1, true), "temporary files left: " .. listing())
  T.raises(function() torch.save({}, dir .. "/no/such/folder/x.safetensors") end, dir .. "/no/such/folder/x.safetensors")
end)

T.test("torch.load of any safetensors file gives its tensors by name", function()
  local m = nn.Linear(3, 2)
  local p = path("linear.safetensors")
  m:save(p)
  local sd, info = torch.load(p)
  T.eq(info.format, "safetensors")
  same_tensor(sd.weight, m.weight, "weight"); same_tensor(sd.bias, m.bias, "bias")
  T.eq(info.dtypes.weight, "F32")
  -- The table goes straight back into a model.
  local m2 = nn.Linear(3, 2)
  m2:load_state_dict(sd)
  same_tensor(m2.weight, m.weight)
end)

T.test("torch.load of a bad file is an error naming the file and the problem", function()
  local function file(name, bytes)
    local p = path(name)
    local f = assert(io.open(p, "wb")); f:write(bytes); f:close()
    return p
  end
  local function safetensors(header, body) return string.pack("<I8", #header) .. header .. (body or "") end
  T.raises(function() torch.load(dir .. "/missing.safetensors") end, dir .. "/missing.safetensors")
  T.raises(function() torch.load(dir) end, "is a folder, not a file")
  local p = file("short.safetensors", "abc")
  local err = T.raises(function() torch.load(p) end, "too short")
  T.check(err:find(p, 1, true), "names the file: " .. err)
  T.raises(function() torch.load(file("json.safetensors", safetensors("{nope"))) end, "header is not valid JSON")
  T.raises(function() torch.load(file("trunc.safetensors", safetensors('{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', "1234"))) end, "out of range")
  -- A description that does not match the tensors.
  local meta = '{"__metadata__":{"sskd.torch.save":"{\\"version\\":1,\\"value\\":{\\"tensor\\":\\"gone\\"}}"}}'
  T.raises(function() torch.load(file("gone.safetensors", safetensors(meta))) end, "names tensor 'gone', which the file does not hold")
  meta = '{"__metadata__":{"sskd.torch.save":"{\\"version\\":1,\\"value\\":{\\"integer\\":1,\\"string\\":\\"x\\"}}"}}'
  T.raises(function() torch.load(file("two.safetensors", safetensors(meta))) end, "exactly one of tensor, integer")
  T.raises(function() torch.load(123) end, "bad argument #1 to 'torch.load' (string expected, got number)")
end)

for i = #written, 1, -1 do os.remove(written[i]) end
os.remove(dir)
return T.report()
