-- scripts/protocol.lua: the SS-KD protocol of ../shared/PAPER.md as a function, shared by the
-- recipes (quickstart.lua, paper.lua, sweep.lua).
--
--   local protocol = dofile("scripts/protocol.lua")
--   local r = protocol.run(settings, {train = ds, test = ds, augment = t, eval_transform = t,
--                                     in_channels = 3})
--
-- One run: split the labelled train set (stratified, seeded), get a teacher (trained on the
-- images outside the subset, on the subset itself, or loaded), train the student alone and with
-- SS-KD from the same initial weights, and return the three test accuracies.
local protocol = {}

--- The settings every recipe shares, with their defaults.
protocol.defaults = {
  samples = 5000, seed = 0, select = "test", val_size = 1000,
  teacher = "subset", teacher_images = 0, teacher_epochs = 25, teacher_weights = false,
  student_epochs = 30, patience = 5, student = "efficientnet_b0", teacher_model = "mobilenet_v2", batch = 32,
  lr_teacher = 5e-4, teacher_schedule = "constant", teacher_augment = true, lr_student = 1e-3, temperature = 3, limit_batches = false, eval_images = 0, out = false,
  phases = "teacher,alone,kd", parallel = false, child_result = false,
}

--- `arg` (from `sskd run ... --set k=v`) merged over `defaults`; unknown keys are an error.
function protocol.settings(defaults, args)
  local s = {}
  for k, v in pairs(protocol.defaults) do s[k] = v end
  for k, v in pairs(defaults or {}) do s[k] = v end
  for k, v in pairs(args or {}) do
    if type(k) == "string" then
      if s[k] == nil then
        local names = {}
        for n in pairs(s) do names[#names + 1] = n end
        table.sort(names)
        error(("unknown setting '%s' (expected one of: %s)"):format(k, table.concat(names, ", ")), 2)
      end
      s[k] = v
    end
  end
  assert(s.select == "test" or s.select == "val", "select must be 'test' or 'val', got " .. tostring(s.select))
  for p in tostring(s.phases):gmatch("[^,]+") do
    if p ~= "teacher" and p ~= "alone" and p ~= "kd" then
      error(("unknown phase '%s' in phases (expected a comma list of teacher, alone, kd)"):format(p), 2)
    end
  end
  assert(s.teacher_schedule == "constant" or s.teacher_schedule == "onecycle",
    "teacher_schedule must be 'constant' (the paper) or 'onecycle', got " .. tostring(s.teacher_schedule))
  if s.limit_batches == false then s.limit_batches = nil end
  return s
end

local function ensure_dir(path) os.execute(("mkdir -p %q"):format(path)) end

-- Child processes: with `parallel = true` the student-alone phase (which needs no teacher) runs
-- in a second sskd process beside the teacher, each with half the threads. Small-map CNN steps
-- keep one core busy far better than two, so two one-thread jobs finish sooner than one
-- two-thread job after the other. The child runs this same recipe with phases=alone and hands its
-- result back as a Lua file.

local function shell_quote(v) return "'" .. tostring(v):gsub("'", [['\'']]) .. "'" end

-- Lua source for a plain value (numbers, strings, booleans, tables of them; the rest is dropped).
local function serialize(v, depth)
  local t = type(v)
  if t == "number" then
    if v ~= v then return "0/0" elseif v == math.huge then return "math.huge" elseif v == -math.huge then return "-math.huge" end
    return math.type(v) == "integer" and tostring(v) or ("%.17g"):format(v)
  elseif t == "string" then return ("%q"):format(v)
  elseif t == "boolean" then return tostring(v)
  elseif t == "table" and (depth or 0) < 8 then
    local parts = {}
    for k, x in pairs(v) do
      local val = serialize(x, (depth or 0) + 1)
      if val and (type(k) == "string" or math.type(k) == "integer") then
        parts[#parts + 1] = "[" .. serialize(k) .. "] = " .. val
      end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return nil
end

-- Starts `phases` of the running recipe in a child sskd with `threads` threads; its progress goes
-- to `log`. Returns a handle for `join`.
local function spawn(S, d, phases, threads, out, log)
  local exe = assert(sskd.executable, "parallel: the path of the sskd binary is unknown")
  local result = out .. "/" .. phases:gsub(",", "-") .. ".result.lua"
  os.remove(result)
  local cmd = {"SSKD_THREADS=" .. threads}
  if sskd.plugin_dirs then cmd[#cmd + 1] = "SSKD_PLUGINS=" .. shell_quote(table.concat(sskd.plugin_dirs, ":")) end
  cmd[#cmd + 1] = shell_quote(exe) .. " run " .. shell_quote(arg[0])
  for k, v in pairs(S) do
    if k ~= "phases" and k ~= "parallel" and k ~= "child_result" and k ~= "out" then
      cmd[#cmd + 1] = "--set " .. shell_quote(k .. "=" .. tostring(v))
    end
  end
  -- Recipe-level settings that pin the child to this one run (root, samples_list, seeds, ...).
  for k, v in pairs(d.child_args or {}) do cmd[#cmd + 1] = "--set " .. shell_quote(k .. "=" .. tostring(v)) end
  for _, kv in ipairs{{"phases", phases}, {"parallel", "false"}, {"out", out}, {"child_result", result}} do
    cmd[#cmd + 1] = "--set " .. shell_quote(kv[1] .. "=" .. kv[2])
  end
  cmd[#cmd + 1] = "2> " .. shell_quote(log)
  local f = assert(io.popen(table.concat(cmd, " "), "r"))
  return {file = f, result = result, log = log, phases = phases}
end

-- Waits for a child started by `spawn` and returns the result table it wrote.
local function join(h)
  local text = h.file:read("a")
  local ok, how, code = h.file:close()
  if not ok then
    error(("the %s phase failed in its child process (%s %s); its log: %s%s"):format(h.phases, how, tostring(code), h.log,
      text ~= "" and ("\n" .. text) or ""), 0)
  end
  local chunk, err = loadfile(h.result)
  if not chunk then error(("the %s phase left no result (%s); its log: %s"):format(h.phases, err, h.log), 0) end
  return chunk()
end

--- A model of the protocol by name (a models.* name or a model_variants plugin) with 10 classes.
--- The paper's script replaces the classifier's Linear by a fresh nn.Linear(1280, 10), so the
--- head has PyTorch's default init (U(+-1/sqrt(in))) rather than torchvision's (EfficientNet:
--- U(+-1/sqrt(out)), whose logits start with std ~5 and cross-entropy ~7 at 10 classes, and the
--- student learns markedly slower than the paper's); the same is done here.
function protocol.model(name, in_channels, what)
  local make = model_variants[name] or models[name]
  assert(make, ("unknown %s '%s' (a models.* name or a model_variants plugin)"):format(what or "model", tostring(name)))
  local m = make{classes = 10, in_channels = in_channels}
  local ok, head = pcall(m.get, m, "classifier.1")
  if ok and head and tostring(head):match("^Linear%(") then
    m:set("classifier.1", nn.Linear(head.weight:size(1), head.weight:size(0)))
  end
  return m
end

--- Runs the protocol; `d` gives train, test, augment, eval_transform, in_channels, name, and
--- child_args (the recipe's own settings that make a child process repeat just this run).
function protocol.run(S, d)
  local out = S.out or ("runs/%s-%d-s%d"):format(d.name, S.samples, S.seed)
  ensure_dir(out)
  local samples, val, rest = d.train:split{samples = S.samples, validation = S.select == "val" and S.val_size or 0, seed = S.seed}
  samples:save_indices(out .. "/samples.txt")
  if S.select == "val" then val:save_indices(out .. "/val.txt") end
  local test = d.test
  -- eval_images > 0 evaluates on a stratified part of the test split (tiny runs only).
  if S.eval_images > 0 and S.eval_images < #test then test = test:split{samples = S.eval_images, seed = S.seed} end
  local eval = S.select == "val" and val or test
  local final_test = S.select == "val" and test or nil
  local function phase(opts)
    opts.augment, opts.eval_transform, opts.eval, opts.test = d.augment, d.eval_transform, eval, final_test
    opts.batch, opts.seed, opts.limit_batches = S.batch, S.seed, S.limit_batches
    opts.stop = stoppers.patience{metric = "accuracy", patience = S.patience}
    return opts
  end
  local wants = {}
  for p in S.phases:gmatch("[^,]+") do wants[p] = true end
  -- The student alone beside the teacher (see `spawn`), when there is a teacher phase to overlap.
  local child, threads = nil, torch.get_num_threads()
  if S.parallel and wants.alone and (wants.teacher or wants.kd) and not (threads >= 2 and sskd.executable) then
    print(("parallel: %s; running the phases one after another"):format(
      sskd.executable and "one thread only (SSKD_THREADS=1)" or "no sskd binary to start (not under `sskd run`)"))
  elseif S.parallel and wants.alone and (wants.teacher or wants.kd) then
    local half = threads // 2
    ensure_dir(out .. "/student")
    child = spawn(S, d, "alone", threads - half, out, out .. "/student/log.txt")
    print(("student alone: running beside the teacher in a second process (%d thread%s; log %s)"):format(
      threads - half, threads - half == 1 and "" or "s", child.log))
    torch.set_num_threads(half)
    wants.alone = false
  end

  -- Teacher.
  local function build(name, what) return protocol.model(name, d.in_channels, what) end
  torch.manual_seed(S.seed)
  local teacher = build(S.teacher_model, "teacher_model")
  local note
  if S.teacher_weights then
    local report = teacher:load(S.teacher_weights, {strict = false})
    note = "MobileNetV2 initialised from " .. S.teacher_weights .. " (" .. tostring(report) .. ")"
  end
  if S.teacher == "outside" or S.teacher == "subset" then
    local tt = samples
    if S.teacher == "outside" then
      tt = rest
      if S.teacher_images > 0 and S.teacher_images < #rest then tt = rest:split{samples = S.teacher_images, seed = S.seed + 1} end
      tt:save_indices(out .. "/teacher.txt")
      note = (note and note .. ", then " or "MobileNetV2 ")
        .. ("pre-trained for %d epoch%s on %d labelled images outside the student's subset (stands in for ImageNet pretraining)"):format(
             S.teacher_epochs, S.teacher_epochs == 1 and "" or "s", #tt)
    else
      note = (note and note .. ", then " or "MobileNetV2 ")
        .. "fine-tuned on the student's samples" .. (S.teacher_weights and "" or " FROM SCRATCH (no ImageNet weights given: a weak teacher)")
    end
    if not S.teacher_weights and S.teacher == "subset" then
      print(("!"):rep(78) .. "\n!! teacher: no ImageNet weights (teacher_weights=FILE.safetensors); training it from scratch\n" .. ("!"):rep(78))
    end
    if S.teacher_schedule == "onecycle" then note = note .. (", one-cycle LR up to %g"):format(S.lr_teacher) end
    if not S.teacher_augment then note = note .. ", without augmentation" end
    print("teacher: " .. note)
    if wants.teacher then
      local opts = phase{model = teacher, train = tt, epochs = S.teacher_epochs, lr = S.lr_teacher, name = "teacher", run = out .. "/teacher"}
      if not S.teacher_augment then opts.augment = nil end
      if S.teacher_schedule == "onecycle" then
        -- Short pre-training from scratch: warm up to lr_teacher, then anneal, stepped per batch.
        local steps = S.teacher_epochs * math.ceil(#tt / S.batch)
        if S.limit_batches then steps = S.teacher_epochs * math.min(S.limit_batches, math.ceil(#tt / S.batch)) end
        opts.scheduler = function(o) return optim.lr_scheduler.OneCycleLR(o, {max_lr = S.lr_teacher, total_steps = steps}) end
        opts.scheduler_per_batch = true
      end
      fit(opts)
      teacher:save(out .. "/teacher.safetensors")
    end
  else
    teacher:load(S.teacher)
    note = "MobileNetV2 loaded from " .. S.teacher
    print("teacher: " .. note)
  end
  -- (A child that runs only the student alone has no teacher to score.)
  local teacher_eval = (wants.teacher or wants.kd or not (S.teacher == "outside" or S.teacher == "subset") or S.teacher_weights)
    and evaluate(teacher, final_test or eval, {transform = d.eval_transform}) or {}

  -- Students from the same initial weights.
  local function student()
    torch.manual_seed(S.seed + 100)
    return build(S.student, "student")
  end
  local r = {teacher = teacher_eval.accuracy, teacher_note = note, out = out, settings = S}
  if wants.alone then
    r.alone = fit(phase{model = student(), train = samples, epochs = S.student_epochs, lr = S.lr_student,
                        name = "student", run = out .. "/student"})
  end
  if child then
    r.alone = join(child)
    torch.set_num_threads(threads)
  end
  if wants.kd then
    r.kd = distill(phase{teacher = teacher, student = student(), train = samples, epochs = S.student_epochs,
                         lr = S.lr_student, temperature = S.temperature, alpha = schedules.paper_gradual,
                         name = "ss-kd", run = out .. "/sskd"})
  end
  if S.child_result then
    -- Child mode: hand the results back (written whole, then renamed: the parent never reads half a file).
    local f = assert(io.open(S.child_result .. ".tmp", "w"))
    f:write("return ", serialize(r.alone or r.kd or {}), "\n")
    f:close()
    assert(os.rename(S.child_result .. ".tmp", S.child_result))
  end
  return r
end

--- Test accuracy (%) of a fit/distill result with its selected weights.
function protocol.accuracy(result)
  if not result then return nil end
  return 100 * (result.test_accuracy or result.accuracy)
end

--- The paper-style table of one or more runs, as Markdown.
function protocol.table(runs, title)
  local md = {title or "", "| samples | seed | teacher | student alone | student + SS-KD | epochs (alone / SS-KD) |",
              "|---:|---:|---:|---:|---:|---|"}
  local function pct(v) return v and ("%.2f %%"):format(v) or "-" end
  for _, r in ipairs(runs) do
    md[#md + 1] = ("| %d | %d | %s | %s | %s | %s / %s |"):format(r.settings.samples, r.settings.seed, pct(r.teacher and 100 * r.teacher),
      pct(protocol.accuracy(r.alone)), pct(protocol.accuracy(r.kd)),
      r.alone and r.alone.epochs or "-", r.kd and r.kd.epochs or "-")
  end
  return table.concat(md, "\n")
end

--- Writes results.md and accuracy.png (eval accuracy per epoch of both students) for a run.
function protocol.report(r, title)
  if r.settings.child_result then return "" end  -- a child's results are reported by its parent
  local text = protocol.table({r}, title) .. "\n\nteacher: " .. r.teacher_note
  print("\n" .. text)
  local f = assert(io.open(r.out .. "/results.md", "w")); f:write(text, "\n"); f:close()
  local series = {}
  local function curve(res) local v = {} for i, h in ipairs(res.history) do v[i] = 100 * h.accuracy end return v end
  if r.alone then series[#series + 1] = {name = "student alone", values = curve(r.alone)} end
  if r.kd then series[#series + 1] = {name = "ss-kd", values = curve(r.kd)} end
  if #series > 0 then
    plot.save{path = r.out .. "/accuracy.png", title = "eval accuracy (%) per epoch", series = series}
    print("plot: " .. r.out .. "/accuracy.png")
  end
  return text
end

return protocol
