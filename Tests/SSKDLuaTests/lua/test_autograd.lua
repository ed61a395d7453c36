-- Autograd from Lua: losses composed in Lua backpropagate into Swift tensors; gradcheck.
local T = require("testlib")

T.test("a loss built from tensor ops backpropagates", function()
  local w = torch.tensor{1, 2, 3}:requires_grad_()
  T.eq(w.requires_grad, true)
  local loss = ((w * w):sum() + 2 * w:sum()) / 2   -- d/dw = w + 1
  T.eq(loss.grad_fn ~= nil, true)
  T.eq(loss.is_leaf, false)
  loss:backward()
  T.values(w.grad, {2, 3, 4})
  -- accumulates like PyTorch
  local l2 = (w * 3):sum(); l2:backward()
  T.values(w.grad, {5, 6, 7})
  w.grad = nil
  T.eq(w.grad, nil)
  w:sum():backward()
  T.values(w.grad, {1, 1, 1})
  w:zero_grad()
  T.eq(w.grad, nil)
end)

T.test("a small classifier: gradients of F.cross_entropy through matmul", function()
  torch.manual_seed(0)
  local W = (torch.randn(4, 3) * 0.1):requires_grad_()
  local b = torch.zeros(3):requires_grad_()
  local x = torch.randn(8, 4)
  local y = torch.tensor{0, 1, 2, 0, 1, 2, 0, 1}
  local first
  for step = 1, 30 do
    local loss = F.cross_entropy(x:matmul(W) + b, y)
    if step == 1 then first = loss:item() end
    W.grad, b.grad = nil, nil
    loss:backward()
    torch.no_grad(function()
      W:sub_(W.grad * 0.5)
      b:sub_(b.grad * 0.5)
    end)
  end
  local last = F.cross_entropy(x:matmul(W) + b, y):item()
  T.check(last < first * 0.8, ("loss should fall: %g -> %g"):format(first, last))
end)

T.test("backward with a gradient and retain_graph", function()
  local x = torch.tensor{1, 2}:requires_grad_()
  local y = x * x
  y:backward(torch.tensor{1, 1}, {retain_graph = true})
  T.values(x.grad, {2, 4})
  y:backward(torch.tensor{1, 0})
  T.values(x.grad, {4, 4})
end)

T.test("no_grad and detach", function()
  local x = torch.ones(2):requires_grad_()
  local y = torch.no_grad(function() return x * 2 end)
  T.eq(y.requires_grad, false)
  T.eq(x:detach().requires_grad, false)
  local a, b = torch.no_grad(function(p, q) return p + q, torch.is_grad_enabled() end, 1, 2)
  T.eq(a, 3); T.eq(b, false)
  T.eq(torch.is_grad_enabled(), true)
  T.eq(torch.enable_grad(function() return torch.is_grad_enabled() end), true)
end)

T.test("indexing and slicing are differentiable", function()
  local x = torch.arange(6):reshape(2, 3):requires_grad_()
  local y = x[{":", "1:"}]:sum() + x[0][0] * 3
  y:backward()
  T.values(x.grad, {3, 1, 1, 0, 1, 1})
end)

T.test("gradcheck from Lua", function()
  local a = torch.randn(3, 4):requires_grad_()
  local b = torch.randn(4, 2):requires_grad_()
  local ok, report = torch.gradcheck(function(p, q) return (p:matmul(q)):tanh():softmax(1) end, {a, b})
  T.eq(ok, true, report)
  T.check(report:find("passed"))
  local ok2, report2 = torch.gradcheck(function(p) return F.log_softmax(p, 1) * 2 end, {a}, {eps = 1e-2, atol = 1e-2})
  T.eq(ok2, true, report2)
  -- a wrong "gradient": detach inside breaks it
  local ok3 = torch.gradcheck(function(p) return p * p:detach() end, {torch.tensor{1, 2}:requires_grad_()})
  T.eq(ok3, false)
  T.raises(function() torch.gradcheck(function(p) return 1 end, {a}) end, "must return a Tensor, got number")
  T.raises(function() torch.gradcheck(function(p) error("inside") end, {a}) end, "inside")
  T.raises(function() torch.gradcheck(function(p) return p end, {torch.ones(2)}) end, "no input requires grad")
  T.raises(function() torch.gradcheck(nil, {a}) end, "bad argument #1 to 'torch.gradcheck' (function expected, got nil)")
end)

return T.report()
