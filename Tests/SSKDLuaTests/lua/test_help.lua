-- help(x) and the docstring registry: every bound function and type is documented.
local T = require("testlib")

local out
local function capture(fn)
  local lines = {}
  local saved = print
  print = function(...) local t = {} for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end lines[#lines + 1] = table.concat(t, "\t") end
  local ok, err = pcall(fn)
  print = saved
  if not ok then error(err, 2) end
  return table.concat(lines, "\n")
end

T.test("every namespace function has a signature and summary", function()
  for _, ns in ipairs{"torch", "F"} do
    for name, v in pairs(_G[ns]) do
      if type(v) == "function" then
        local d = sskd.docs[v]
        T.check(d and d.sig ~= "" and d.summary ~= "", ns .. "." .. name .. " is undocumented")
      end
    end
  end
  for tname, t in pairs(sskd.types) do
    for m, e in pairs(t.methods) do T.check(e.sig ~= "" and e.summary ~= "", tname .. ":" .. m .. " is undocumented") end
  end
end)

T.test("help on functions, methods, types, objects, namespaces, plugins", function()
  T.check(capture(function() help(torch.zeros) end):find("torch.zeros(size...)", 1, true))
  T.check(capture(function() help("torch.zeros") end):find("a tensor of zeros", 1, true))
  local x = torch.zeros(2)
  T.check(capture(function() help(x.sum) end):find("x:sum([dim [, keepdim]])", 1, true))
  local th = capture(function() help(x) end)
  T.check(th:find("Tensor: An n%-dimensional") and th:find("methods:") and th:find("x.grad", 1, true), th)
  T.check(capture(function() help("Tensor") end):find("x:matmul(other)", 1, true))
  T.check(capture(function() help("Tensor:matmul") end):find("matrix product", 1, true))
  local ns = capture(function() help(torch) end)
  T.check(ns:find("torch.rand(size...)", 1, true) and ns:find("torch.gradcheck", 1, true), ns)
  T.check(capture(function() help(F) end):find("F.cross_entropy(logits, target", 1, true))
  local sh = capture(function() help(schedules.paper_gradual) end)
  T.check(sh:find("schedules.paper_gradual(epoch [, history]) -> alpha", 1, true), sh)
  T.check(sh:find("parameters:", 1, true))
  T.check(capture(function() help(stoppers) end):find("stoppers.patience{metric", 1, true))
  T.check(capture(function() help(losses.kd) end):find("KL(softmax(teacher / T)", 1, true))
  T.check(capture(function() help() end):find("0-based", 1, true))
  T.check(capture(function() help("no.such.thing") end):find("no help for 'no.such.thing'", 1, true))
  T.check(capture(function() help(help) end):find("help([x])", 1, true))
  T.check(capture(function() help(42) end):find("no help", 1, true))
end)

T.test("repr (the REPL printer)", function()
  T.eq(sskd.repr({1, 2, 3}), "{1, 2, 3}")
  T.eq(sskd.repr({a = 1, b = "x"}), '{a = 1, b = "x"}')
  T.eq(sskd.repr(torch.zeros(2)), "tensor([0., 0.])")
  T.check(sskd.repr(torch.zeros):find("function torch.zeros", 1, true))
  T.eq(sskd.repr(torch.zeros(2, 3).shape), "{2, 3}")
end)

return T.report()
