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
  lr_teacher = 5e-4, lr_student = 1e-3, temperature = 3, limit_batches = false, eval_images = 0, out = false,
  phases = "teacher,alone,kd",
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
  if s.limit_batches == false then s.limit_batches = nil end
  return s
end

local function ensure_dir(path) os.execute(("mkdir -p %q"):format(path)) end

--- Runs the protocol; `d` gives train, test, augment, eval_transform, in_channels, name.
function protocol.run(S, d)
  local out = S.out or ("runs/%s-%d-s%d"):format(d.name, S.samples, S.seed)
  ensure_dir(out)
  local samples, val, rest = d.train:split{samples = S.samples, validation = S.select == "val" and S.val_size or 0, seed = S.seed}
  samples:save_indices(out .. "/samples.txt")
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

  -- Teacher.
  local function build(name, what)
    local make = model_variants[name] or models[name]
    assert(make, ("unknown %s '%s' (a models.* name or a model_variants plugin)"):format(what, tostring(name)))
    return make{classes = 10, in_channels = d.in_channels}
  end
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
        .. ("pre-trained on %d labelled images outside the student's subset (stands in for ImageNet pretraining)"):format(#tt)
    else
      note = (note and note .. ", then " or "MobileNetV2 ")
        .. "fine-tuned on the student's samples" .. (S.teacher_weights and "" or " FROM SCRATCH (no ImageNet weights given: a weak teacher)")
    end
    if not S.teacher_weights and S.teacher == "subset" then
      print(("!"):rep(78) .. "\n!! teacher: no ImageNet weights (teacher_weights=FILE.safetensors); training it from scratch\n" .. ("!"):rep(78))
    end
    print("teacher: " .. note)
    if wants.teacher then
      fit(phase{model = teacher, train = tt, epochs = S.teacher_epochs, lr = S.lr_teacher, name = "teacher", run = out .. "/teacher"})
      teacher:save(out .. "/teacher.safetensors")
    end
  else
    teacher:load(S.teacher)
    note = "MobileNetV2 loaded from " .. S.teacher
    print("teacher: " .. note)
  end
  local teacher_eval = evaluate(teacher, final_test or eval, {transform = d.eval_transform})

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
  if wants.kd then
    r.kd = distill(phase{teacher = teacher, student = student(), train = samples, epochs = S.student_epochs,
                         lr = S.lr_student, temperature = S.temperature, alpha = schedules.paper_gradual,
                         name = "ss-kd", run = out .. "/sskd"})
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
    md[#md + 1] = ("| %d | %d | %s | %s | %s | %s / %s |"):format(r.settings.samples, r.settings.seed, pct(100 * r.teacher),
      pct(protocol.accuracy(r.alone)), pct(protocol.accuracy(r.kd)),
      r.alone and r.alone.epochs or "-", r.kd and r.kd.epochs or "-")
  end
  return table.concat(md, "\n")
end

--- Writes results.md and accuracy.png (eval accuracy per epoch of both students) for a run.
function protocol.report(r, title)
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
