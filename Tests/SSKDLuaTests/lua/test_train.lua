-- fit / distill / evaluate from Lua on a tiny CNN and a small Fashion-MNIST subset: results,
-- scripted alpha, loss, stopping and hooks, run files, resume, and errors with file:line.
local T = require("testlib")
local all = data.fashion_mnist{split = "test"}
local train, val = all:split{samples = 64, validation = 32, seed = 1}

local function tiny()
  torch.manual_seed(5)
  return nn.Sequential{nn.Conv2d(1, 4, 3, {stride = 2, padding = 1}), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                       nn.Flatten(), nn.Linear(16, 10)}
end
local function tmpdir() local d = os.tmpname(); os.remove(d); return d end

T.test("fit returns metrics and writes a run", function()
  local dir = tmpdir()
  local r = fit{model = tiny(), train = train, eval = val, epochs = 3, batch = 16, lr = 1e-2, run = dir, quiet = true}
  T.eq(r.status, "completed"); T.eq(r.epochs, 3); T.eq(#r.history, 3)
  T.check(r.accuracy >= 0 and r.accuracy <= 1)
  T.eq(r.history[1].epoch, 0)
  T.check(r.history[3].accuracy == r.history[3].eval_accuracy, "accuracy aliases the eval split")
  T.eq(#r.eval.confusion, 10)
  for _, f in ipairs{"metrics.jsonl", "metrics.csv", "last.safetensors", "best.safetensors", "plot.png", "summary.json"} do
    T.check(io.open(dir .. "/" .. f) ~= nil, f .. " written")
  end
  -- m:load takes a run's checkpoint (its model part) as well as a plain state dict.
  local m = tiny()
  m:load(dir .. "/best.safetensors")
  local again = evaluate(m, val)
  T.eq(again.accuracy, r.eval.accuracy, "the best checkpoint's weights give the best epoch's accuracy")
  -- A file for another model: a short error naming the file, the first keys and the count.
  local ok, err = pcall(function() models.mobilenet_v2{classes = 10}:load(dir .. "/best.safetensors") end)
  T.check(not ok and err:find("best.safetensors", 1, true) and err:find("in all)", 1, true) and #err < 2500, err)
  -- Resume a finished 3-epoch run to 4 epochs: the first 3 rows are kept.
  local r2 = fit{model = tiny(), train = train, eval = val, epochs = 4, batch = 16, lr = 1e-2, run = dir, resume = true, quiet = true}
  T.eq(#r2.history, 4)
  T.eq(r2.history[3].train_loss, r.history[3].train_loss)
  os.execute("rm -rf " .. dir)
end)

T.test("distill with a scripted alpha, loss, stopper and hooks", function()
  local teacher = tiny()
  local seen, starts, alphas = {}, 0, {}
  local r = distill{teacher = teacher, student = tiny(), train = train, eval = val, epochs = 6, batch = 32, quiet = true,
    alpha = function(e, history) alphas[#alphas + 1] = e; T.eq(#history, e); return e < 1 and 0 or 0.5 end,
    loss = function(s, t, y, alpha, temperature)
      T.eq(temperature, 2)
      return alpha * losses.kd(s, t, y, alpha, temperature) + (1 - alpha) * F.cross_entropy(s, y)
    end,
    temperature = 2,
    stop = function(history) return #history >= 4 end,
    on_epoch_start = function(e) starts = starts + 1 end,
    on_epoch_end = function(e, rec) seen[#seen + 1] = rec.alpha end}
  T.eq(r.status, "early_stopped"); T.eq(r.epochs, 4); T.eq(starts, 4)
  T.eq(seen[1], 0); T.eq(seen[2], 0.5)
  T.eq(table.concat(alphas, ","), "0,1,2,3")
  -- The paper's schedule and a stopper plugin object.
  local r2 = distill{teacher = teacher, student = tiny(), train = train, eval = val, epochs = 7, batch = 32, quiet = true,
                     alpha = schedules.paper_gradual, stop = stoppers.patience{patience = 100}}
  T.near(r2.history[7].alpha, 0.15)
  T.eq(r2.history[5].alpha, 0)
end)

T.test("unlabeled images distill with the KD term", function()
  local r = distill{teacher = tiny(), student = tiny(), train = train, unlabeled = val:unlabeled(), eval = val,
                    epochs = 1, batch = 16, alpha = 0.5, quiet = true}
  T.eq(r.epochs, 1)
end)

T.test("evaluate", function()
  local e = evaluate(tiny(), val)
  T.eq(e.count, 32)
  T.check(e.table:find("accuracy", 1, true))
end)

T.test("errors name the option or carry file:line", function()
  T.raises(function() fit{model = tiny(), train = train} end, "option 'epochs' is required")
  T.raises(function() fit{train = train, epochs = 1} end, "option 'model'")
  T.raises(function() fit{model = tiny(), train = train, epochs = 1, batchsize = 3} end, "unknown option 'batchsize'")
  T.raises(function() fit{model = tiny(), train = 3, epochs = 1} end, "bad option 'train'")
  T.raises(function() distill{student = tiny(), train = train, epochs = 1} end, "option 'teacher'")
  T.raises(function() distill{teacher = tiny(), student = tiny(), train = train, epochs = 1, quiet = true,
                              alpha = function() return "x" end} end, "expected a number")
  local err = T.raises(function() distill{teacher = tiny(), student = tiny(), train = train, epochs = 1, quiet = true,
                              loss = function() error("my loss broke") end} end, "my loss broke")
  T.check(err:find("test_train.lua:%d+"), "the Lua position is in the message: " .. err)
  T.raises(function() fit{model = tiny(), train = train, epochs = 2, quiet = true,
                          on_epoch_end = function(e) if e == 0 then error("hook failed") end end} end, "hook failed")
  T.raises(function() fit{model = tiny(), train = train, epochs = 1, quiet = true, loss = function() return 3 end} end, "expected a Tensor")
  T.raises(function() fit{model = tiny(), train = train, epochs = 1, quiet = true,
                          loss = function(s) return s:sum() * (0 / 0) end} end, "loss is NaN")
  T.raises(function() fit{model = tiny(), train = train, epochs = 1, resume = true, quiet = true} end, "needs run")
  T.raises(function() fit{model = tiny(), train = train, epochs = 1, quiet = true, run = tmpdir(), resume = true} end, "does not exist")
end)

T.test("Ctrl-C ends the recipe with an error naming the checkpoint", function()
  local dir = tmpdir()
  -- A real SIGINT from another process shortly after epoch 0 (system() ignores SIGINT while it
  -- waits, so the kill runs in the background); every epoch lasts at least 0.1 s.
  local err = T.raises(function()
    fit{model = tiny(), train = train, epochs = 100, batch = 16, quiet = true, run = dir,
        on_epoch_end = function(e)
          if e == 0 then os.execute("(sleep 0.3; kill -INT $PPID) >/dev/null 2>&1 &") end
          local t = os.clock() while os.clock() - t < 0.1 do end
        end}
  end, "interrupted (SIGINT) after")
  T.check(err:find(dir, 1, true), err)
  os.execute("rm -rf " .. dir)
end)

T.test("plot.save", function()
  local p = os.tmpname() .. ".png"
  plot.save{path = p, title = "t", series = {{name = "a", values = {1, 2, 3}}, {name = "b", values = {3, 1}}}}
  local f = io.open(p, "rb"); T.eq(f:read(4), "\137PNG"); f:close(); os.remove(p)
  T.raises(function() plot.save{path = p} end, "either 'series'")
  T.raises(function() plot.save{path = "/nonexistent/dir/x.png", series = {}} end, "/nonexistent/dir/x.png")
end)

return T.report()
