-- scripts/protocol.lua: the SS-KD protocol of ../shared/PAPER.md as a function, shared by the
-- recipes (quickstart.lua, paper.lua, sweep.lua, folder.lua).
--
--   local protocol = dofile("scripts/protocol.lua")
--   local r = protocol.run(settings, {train = ds, test = ds, augment = t, eval_transform = t,
--                                     in_channels = 3, unlabeled = ds_or_nil, name = "..."})
--
-- One run, four phases from one stratified, seeded split of the labelled train set:
--   teacher       trained on the images outside the subset, on the subset itself, or loaded;
--                 a trained teacher is kept in a cache keyed by everything that decides it and
--                 reused by later runs with the same settings
--   alone         the student trained on its labelled subset alone
--   kd            the same student (same initial weights) with SS-KD: the paper's blend of KD and
--                 cross-entropy under the gradual alpha
--   kd_unlabeled  SS-KD plus distillation on images without labels (the recipe's unlabelled set,
--                 else the labelled images outside the subset and the validation split with
--                 their labels hidden): the "self-supervised" of the paper's name
-- and the test accuracy of each.
local protocol = {}

--- The settings every recipe shares, with their defaults.
protocol.defaults = {
  samples = 5000, seed = 0, select = "test", val_size = 1000,
  teacher = "subset", teacher_images = 0, teacher_epochs = 25, teacher_weights = false, teacher_batch = 0,
  teacher_model = "mobilenet_v2", lr_teacher = 5e-4, teacher_schedule = "constant", teacher_augment = true,
  cache = "runs/cache",
  student_epochs = 30, patience = 5, student = "efficientnet_b0", batch = 32, lr_student = 1e-3, temperature = 3,
  student_schedule = "constant",
  -- kd_unlabeled (not in the paper; measured on Fashion-MNIST, 2500 samples, README "What was
  -- tried"): 4 unlabelled batches per labelled one for 20 epochs beat 2 for 20 (83.5 % against
  -- 86.6 % at the last epoch) and 8 for 10 (85.9 %, the same compute); with a constant LR the
  -- accuracy peaked near epoch 14 (85.0-85.2 %) and then fell by up to 10 points as training
  -- grew unstable, while a cosine-annealed LR kept climbing to the end; a constant alpha of 0.5
  -- on the labelled batches did as well as the paper's gradual schedule.
  unlabeled_ratio = 4, unlabeled_alpha = 0.5, unlabeled_epochs = 20, unlabeled_schedule = "cosine",
  limit_batches = false, eval_images = 0, out = false,
  phases = "teacher,alone,kd,kd_unlabeled", parallel = false, child_result = false,
  -- Under mpirun: every fit/distill over all ranks (false: each rank trains alone, as a sweep's
  -- ranks do with their share of the runs).
  distributed = true,
}

protocol.phase_names = {"teacher", "alone", "kd", "kd_unlabeled"}
local known_phase = {teacher = true, alone = true, kd = true, kd_unlabeled = true}

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
    if not known_phase[p] then
      error(("unknown phase '%s' in phases (expected a comma list of %s)"):format(p, table.concat(protocol.phase_names, ", ")), 2)
    end
  end
  assert(s.teacher_schedule == "constant" or s.teacher_schedule == "onecycle",
    "teacher_schedule must be 'constant' (the paper) or 'onecycle', got " .. tostring(s.teacher_schedule))
  for _, k in ipairs{"student_schedule", "unlabeled_schedule"} do
    assert(s[k] == "constant" or s[k] == "cosine", k .. " must be 'constant' (the paper) or 'cosine', got " .. tostring(s[k]))
  end
  assert(type(s.unlabeled_ratio) == "number" and s.unlabeled_ratio > 0,
    "unlabeled_ratio must be a number > 0 (unlabelled batches per labelled batch), got " .. tostring(s.unlabeled_ratio))
  assert(type(s.unlabeled_alpha) == "number" and s.unlabeled_alpha >= 0 and s.unlabeled_alpha <= 1
      or type(s.unlabeled_alpha) == "string" and schedules[s.unlabeled_alpha] ~= nil,
    "unlabeled_alpha must be a number in [0, 1] or a schedule's name (schedules." .. tostring(s.unlabeled_alpha) .. " does not exist)")
  if s.limit_batches == false then s.limit_batches = nil end
  if s.teacher_batch == 0 then s.teacher_batch = s.batch end
  if s.unlabeled_epochs == 0 then s.unlabeled_epochs = s.student_epochs end
  return s
end

local function ensure_dir(path) os.execute(("mkdir -p %q"):format(path)) end

-- Child processes: with `parallel = true` phases that do not depend on each other run in child
-- sskd processes beside the parent, each with its share of the threads. Small-map CNN steps keep
-- one core busy far better than two, so two one-thread jobs finish sooner than one two-thread
-- job after the other. A child runs this same recipe with `phases` set to its share and the
-- teacher given as a file, and hands its results back as a Lua file.

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

-- Starts `phases` of the running recipe in a child sskd with `threads` threads (`extra` settings
-- override the run's); its progress goes to `log`. Returns a handle for `join`.
local function spawn(S, d, phases, threads, out, log, extra)
  local exe = assert(sskd.executable, "parallel: the path of the sskd binary is unknown")
  local result = out .. "/" .. phases:gsub(",", "-") .. ".result.lua"
  os.remove(result)
  -- SSKD_MPI=0: a child of an mpirun rank inherits its launcher variables but is no rank itself.
  local cmd = {"SSKD_THREADS=" .. threads, "SSKD_MPI=0"}
  if sskd.plugin_dirs then cmd[#cmd + 1] = "SSKD_PLUGINS=" .. shell_quote(table.concat(sskd.plugin_dirs, ":")) end
  cmd[#cmd + 1] = shell_quote(exe) .. " run " .. shell_quote(arg[0])
  local set = {}
  for k, v in pairs(S) do set[k] = v end
  for k, v in pairs(extra or {}) do set[k] = v end
  set.phases, set.parallel, set.out, set.child_result = phases, false, out, result
  -- Derived defaults go back to their "unset" spelling so the child derives them the same way.
  if set.limit_batches == nil then set.limit_batches = false end
  for k, v in pairs(set) do cmd[#cmd + 1] = "--set " .. shell_quote(k .. "=" .. tostring(v)) end
  -- Recipe-level settings that pin the child to this one run (root, samples_list, seeds, ...).
  for k, v in pairs(d.child_args or {}) do cmd[#cmd + 1] = "--set " .. shell_quote(k .. "=" .. tostring(v)) end
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
function protocol.model(name, in_channels, what, classes)
  local make = model_variants[name] or models[name]
  assert(make, ("unknown %s '%s' (a models.* name or a model_variants plugin)"):format(what or "model", tostring(name)))
  local m = make{classes = classes or 10, in_channels = in_channels}
  local ok, head = pcall(m.get, m, "classifier.1")
  if ok and head and tostring(head):match("^Linear%(") then
    m:set("classifier.1", nn.Linear(head.weight:size(1), head.weight:size(0)))
  end
  return m
end

-- The teacher: loaded from a file, reused from the cache, or to be trained. Returns the model, a
-- table describing where it came from (for results.md), and when it still has to be trained, a
-- function(threads) that trains it (and caches it).
local function get_teacher(S, d, parts, out, wants)
  local classes = #d.train.classes
  torch.manual_seed(S.seed)
  local teacher = protocol.model(S.teacher_model, d.in_channels, "teacher_model", classes)
  local info = {model = S.teacher_model}
  if not (S.teacher == "outside" or S.teacher == "subset") then
    teacher:load(S.teacher)
    info.how, info.path = "loaded", S.teacher
    info.note = S.teacher_model .. " loaded from " .. S.teacher
    return teacher, info, nil
  end
  local note
  if S.teacher_weights then
    local report = teacher:load(S.teacher_weights, {strict = false})
    note = S.teacher_model .. " initialised from " .. S.teacher_weights .. " (" .. tostring(report) .. ")"
  end
  local tt = parts.samples
  if S.teacher == "outside" then
    tt = parts.rest
    if S.teacher_images > 0 and S.teacher_images < #tt then tt = tt:split{samples = S.teacher_images, seed = S.seed + 1} end
    tt:save_indices(out .. "/teacher.txt")
    note = (note and note .. ", then " or S.teacher_model .. " ")
      .. ("trained for %d epoch%s on %d labelled images outside the student's subset and the validation split (stands in for ImageNet pretraining)"):format(
           S.teacher_epochs, S.teacher_epochs == 1 and "" or "s", #tt)
  else
    note = (note and note .. ", then " or S.teacher_model .. " ")
      .. "fine-tuned on the student's samples" .. (S.teacher_weights and "" or " FROM SCRATCH (no ImageNet weights given: a weak teacher)")
    if not S.teacher_weights then
      print(("!"):rep(78) .. "\n!! teacher: no ImageNet weights (teacher_weights=FILE.safetensors); training it from scratch\n" .. ("!"):rep(78))
    end
  end
  note = note .. (", batch %d, Adam %s LR %g"):format(S.teacher_batch, S.teacher_schedule == "onecycle" and "one-cycle" or "constant", S.lr_teacher)
  if not S.teacher_augment then note = note .. ", without augmentation" end
  info.note, info.images = note, #tt

  -- Everything that decides the teacher's weights: its data (the exact images, labels and
  -- order), the architecture and initial weights (the fingerprint covers both, and ImageNet
  -- weights), every training setting and the seed. Not the selection split (the teacher keeps
  -- its last epoch's weights; the split is only logged), and not the thread count: it changes
  -- results only at float rounding.
  local key = sskd.canonical{
    format = "sskd-protocol-teacher-2", sskd = sskd.version, model = S.teacher_model,
    init = teacher:fingerprint(), data = tt:fingerprint(),
    augment = S.teacher_augment and tostring(d.augment) or "none",
    epochs = S.teacher_epochs, batch = S.teacher_batch, lr = S.lr_teacher, schedule = S.teacher_schedule,
    seed = S.seed, limit_batches = S.limit_batches or 0,
  }
  local cache = S.cache and sskd.model_cache(S.cache .. "/teachers")
  local lock
  if cache then
    local hit, got, path = cache:load(teacher, key)
    if not hit then
      -- Another process sharing the cache (a sweep's rank) may be training this very teacher:
      -- wait for it, then look again, so that one trains and the others reuse.
      lock = cache:lock(key)
      if lock.waited then print("teacher: waited for another process training the same teacher") end
      hit, got, path = cache:load(teacher, key)
      if hit then lock:unlock() end
    end
    if hit then
      info.how, info.path = "reused", got.path
      info.trained_at = got.metadata.written
      print(("teacher: reused %s (trained %s; %s)"):format(got.path, got.metadata.written or "?", note))
      return teacher, info, nil
    end
    print(("teacher: training it: %s (%s)"):format(got, path))
  end
  if not wants.teacher and S.child_result then
    if lock then lock:unlock() end
    error("a child process needs its teacher as a file (teacher=PATH) or in the cache", 0)
  end
  local function train(threads_for_training)
    print("teacher: " .. note)
    local saved = torch.get_num_threads()
    if threads_for_training then torch.set_num_threads(threads_for_training) end
    local opts = protocol.phase_options(S, parts, d, {model = teacher, train = tt, epochs = S.teacher_epochs, lr = S.lr_teacher,
                                                      batch = S.teacher_batch, name = "teacher", run = out .. "/teacher"})
    -- The paper trains its teacher for all its epochs and keeps the last weights (no early
    -- stopping; the selection split is only logged).
    opts.stop, opts.restore_best = nil, false
    if not S.teacher_augment then opts.augment = nil end
    if S.teacher_schedule == "onecycle" then
      -- Short pre-training from scratch: warm up to lr_teacher, then anneal, stepped per batch.
      local per_epoch = math.ceil(#tt / S.teacher_batch)
      if S.limit_batches then per_epoch = math.min(S.limit_batches, per_epoch) end
      local steps = S.teacher_epochs * per_epoch
      opts.scheduler = function(o) return optim.lr_scheduler.OneCycleLR(o, {max_lr = S.lr_teacher, total_steps = steps}) end
      opts.scheduler_per_batch = true
    end
    local t0 = os.time()
    local fitted = fit(opts)
    torch.set_num_threads(saved)
    info.how, info.seconds = "trained", fitted.seconds
    if cache then
      info.path = cache:store(teacher, key, {model = S.teacher_model, images = #tt, epochs = fitted.epochs,
                                             selection_accuracy = fitted.accuracy or 0, seconds = os.time() - t0})
      print(("teacher: cached in %s"):format(info.path))
    end
    if lock then lock:unlock() end
  end
  return teacher, info, train
end

--- The options every fit/distill of the protocol shares (data, augmentation, selection, early
--- stopping), merged into `opts`; `schedule` "cosine" anneals the LR to 0 over the epochs.
function protocol.phase_options(S, parts, d, opts, schedule)
  opts.augment, opts.eval_transform, opts.eval, opts.test = d.augment, d.eval_transform, parts.eval, parts.final_test
  opts.batch = opts.batch or S.batch
  opts.seed, opts.limit_batches = S.seed, S.limit_batches
  opts.distributed = S.distributed
  opts.stop = stoppers.patience{metric = "accuracy", patience = S.patience}
  if schedule == "cosine" then
    local epochs = opts.epochs
    opts.scheduler = function(o) return optim.lr_scheduler.CosineAnnealingLR(o, {T_max = epochs}) end
  end
  return opts
end

--- Runs the protocol; `d` gives train, test, augment, eval_transform, in_channels, name,
--- unlabeled (optional: images without labels for kd_unlabeled) and child_args (the recipe's
--- own settings that make a child process repeat just this run).
function protocol.run(S, d)
  local out = S.out or ("runs/%s-%d-s%d"):format(d.name, S.samples, S.seed)
  ensure_dir(out)
  local samples, val, rest = d.train:split{samples = S.samples, validation = S.select == "val" and S.val_size or 0, seed = S.seed}
  if not S.child_result then
    samples:save_indices(out .. "/samples.txt")
    if S.select == "val" then val:save_indices(out .. "/val.txt") end
  end
  local test = d.test
  -- eval_images > 0 evaluates on a stratified part of the test split (tiny runs only).
  if S.eval_images > 0 and S.eval_images < #test then test = test:split{samples = S.eval_images, seed = S.seed} end
  local parts = {samples = samples, val = val, rest = rest, eval = S.select == "val" and val or test,
                 final_test = S.select == "val" and test or nil}
  -- The unlabelled images: the recipe's own set, else every labelled image outside the subset
  -- and the validation split, labels hidden (the loader never sees them: an unlabeled view).
  parts.unlabeled = d.unlabeled or rest:unlabeled()

  local wants = {}
  for p in S.phases:gmatch("[^,]+") do wants[p] = true end
  if wants.kd_unlabeled and #parts.unlabeled == 0 then
    error(("kd_unlabeled: no images without labels (every labelled image is in the student's subset or the validation split, and the recipe gives no unlabelled set); leave the phase out with phases=teacher,alone,kd"), 0)
  end
  local needs_teacher = wants.teacher or wants.kd or wants.kd_unlabeled
  local threads = torch.get_num_threads()
  local forks = S.parallel and not S.child_result and threads >= 2 and sskd.executable ~= nil
  if S.parallel and not forks and not S.child_result then
    print(("parallel: %s; running the phases one after another"):format(
      sskd.executable and "one thread only (SSKD_THREADS=1)" or "no sskd binary to start (not under `sskd run`)"))
  end
  local half = threads // 2
  local children = {}
  local r = {out = out, settings = S}

  -- While the teacher trains, the student alone (which needs no teacher) trains beside it;
  -- unless kd_unlabeled follows: it is the longest phase, and the run ends soonest when the
  -- teacher takes every thread and the student alone then trains beside kd_unlabeled with SS-KD.
  local teacher, tinfo, train_teacher
  if needs_teacher then
    teacher, tinfo, train_teacher = get_teacher(S, d, parts, out, wants)
    if train_teacher and forks and wants.alone and not wants.kd_unlabeled then
      ensure_dir(out .. "/student")
      children[#children + 1] = spawn(S, d, "alone", threads - half, out, out .. "/student/log.txt")
      print(("student alone: running beside the teacher in a second process (%d thread%s; log %s)"):format(
        threads - half, threads - half == 1 and "" or "s", out .. "/student/log.txt"))
      wants.alone = false
      train_teacher(half)
    elseif train_teacher then
      train_teacher()
    end
    if not S.child_result then teacher:save(out .. "/teacher.safetensors") end
    r.teacher_info = tinfo
  end

  -- Students from the same initial weights.
  local function student()
    torch.manual_seed(S.seed + 100)
    return protocol.model(S.student, d.in_channels, "student", #d.train.classes)
  end
  local function run_alone()
    return fit(protocol.phase_options(S, parts, d, {model = student(), train = samples, epochs = S.student_epochs, lr = S.lr_student,
                                                    name = "student", run = out .. "/student"}, S.student_schedule))
  end
  local function run_kd()
    return distill(protocol.phase_options(S, parts, d, {teacher = teacher, student = student(), train = samples, epochs = S.student_epochs,
      lr = S.lr_student, temperature = S.temperature, alpha = schedules.paper_gradual, name = "ss-kd", run = out .. "/sskd"}, S.student_schedule))
  end
  local function run_kd_unlabeled()
    local alpha = type(S.unlabeled_alpha) == "number" and S.unlabeled_alpha or schedules[S.unlabeled_alpha]
    return distill(protocol.phase_options(S, parts, d, {teacher = teacher, student = student(), train = samples,
      unlabeled = parts.unlabeled, unlabeled_ratio = S.unlabeled_ratio, epochs = S.unlabeled_epochs,
      lr = S.lr_student, temperature = S.temperature, alpha = alpha, name = "ss-kd+unlabeled", run = out .. "/sskd_unlabeled"},
      S.unlabeled_schedule))
  end

  -- The student phases. With threads to spare, the longest (kd_unlabeled) runs here and the
  -- others in one child after another, each with its share of the threads.
  local here = {}
  local rest_phases = {}
  for _, p in ipairs{"alone", "kd"} do if wants[p] then rest_phases[#rest_phases + 1] = p end end
  if forks and wants.kd_unlabeled and #rest_phases > 0 then
    local phases = table.concat(rest_phases, ",")
    local log = out .. "/" .. phases:gsub(",", "-") .. ".log"
    children[#children + 1] = spawn(S, d, phases, half, out, log, {teacher = out .. "/teacher.safetensors"})
    print(("%s: running beside kd_unlabeled in a second process (%d thread%s; log %s)"):format(
      phases, half, half == 1 and "" or "s", log))
    torch.set_num_threads(threads - half)
    here = {"kd_unlabeled"}
  else
    for _, p in ipairs{"alone", "kd", "kd_unlabeled"} do if wants[p] then here[#here + 1] = p end end
    -- The student alone may still run in its child: take half the threads until it is done.
    if #children > 0 then torch.set_num_threads(threads - half) end
  end
  local runners = {alone = run_alone, kd = run_kd, kd_unlabeled = run_kd_unlabeled}
  for _, p in ipairs(here) do r[p] = runners[p]() end
  for _, h in ipairs(children) do
    for p, res in pairs(join(h)) do r[p] = res end
  end
  torch.set_num_threads(threads)

  if S.child_result then
    -- Child mode: hand the results back (written whole, then renamed: the parent never reads half a file).
    local back = {}
    for _, p in ipairs{"alone", "kd", "kd_unlabeled"} do back[p] = r[p] end
    local f = assert(io.open(S.child_result .. ".tmp", "w"))
    f:write("return ", serialize(back), "\n")
    f:close()
    assert(os.rename(S.child_result .. ".tmp", S.child_result))
    return r
  end
  if needs_teacher then
    -- The teacher's test accuracy (the split the students are scored on).
    r.teacher = evaluate(teacher, parts.final_test or parts.eval, {transform = d.eval_transform}).accuracy
    tinfo.accuracy = r.teacher
  end
  r.unlabeled_images = #parts.unlabeled
  return r
end

--- Test accuracy (%) of a fit/distill result with its selected weights.
function protocol.accuracy(result)
  if not result then return nil end
  return 100 * (result.test_accuracy or result.accuracy)
end

--- The paper-style table of one or more runs, as Markdown.
function protocol.table(runs, title)
  local md = {title or "", "| samples | seed | teacher | student alone | student + SS-KD | SS-KD + unlabeled | epochs (alone / SS-KD / unlabeled) |",
              "|---:|---:|---:|---:|---:|---:|---|"}
  local function pct(v) return v and ("%.2f %%"):format(v) or "-" end
  for _, r in ipairs(runs) do
    md[#md + 1] = ("| %d | %d | %s | %s | %s | %s | %s / %s / %s |"):format(r.settings.samples, r.settings.seed, pct(r.teacher and 100 * r.teacher),
      pct(protocol.accuracy(r.alone)), pct(protocol.accuracy(r.kd)), pct(protocol.accuracy(r.kd_unlabeled)),
      r.alone and r.alone.epochs or "-", r.kd and r.kd.epochs or "-", r.kd_unlabeled and r.kd_unlabeled.epochs or "-")
  end
  return table.concat(md, "\n")
end

--- What each phase was, in words (results.md).
function protocol.describe(r)
  local S, t = r.settings, r.teacher_info
  local lines = {}
  local sel = S.select == "val" and ("a %d-image validation split held out of the labelled train images"):format(S.val_size)
    or "the test split (as the paper's script)"
  if t then
    local how = t.how == "reused" and ("reused from the cache: %s (trained %s)"):format(t.path, t.trained_at or "?")
      or t.how == "trained" and ("trained in this run (%.0f s)%s"):format(t.seconds or 0, t.path and ", cached in " .. t.path or "")
      or ("loaded from %s"):format(t.path)
    lines[#lines + 1] = ("- teacher: %s; %s; test accuracy %s"):format(t.note, how, r.teacher and ("%.2f %%"):format(100 * r.teacher) or "-")
  end
  local function lr(schedule) return schedule == "cosine" and ("Adam LR %g annealed to 0 (cosine)"):format(S.lr_student) or ("Adam LR %g"):format(S.lr_student) end
  local student = ("%s, %d labelled images, at most %d epochs, batch %d, %s, early stopping (patience %d) on %s, best weights restored")
    :format(S.student, S.samples, S.student_epochs, S.batch, lr(S.student_schedule), S.patience, sel)
  if r.alone then lines[#lines + 1] = "- student alone: " .. student .. "; cross-entropy" end
  if r.kd then
    lines[#lines + 1] = ("- student + SS-KD: the same student and initial weights; alpha * KD(T = %g) + (1 - alpha) * CE, alpha the paper's gradual schedule")
      :format(S.temperature)
  end
  if r.kd_unlabeled then
    local alpha = type(S.unlabeled_alpha) == "number" and ("%g"):format(S.unlabeled_alpha) or ("schedules." .. S.unlabeled_alpha)
    lines[#lines + 1] = ("- SS-KD + unlabeled: as SS-KD (alpha %s on labelled batches, at most %d epochs, %s), plus %g batches of images without labels per labelled batch (KD term alone) from %d unlabelled images")
      :format(alpha, S.unlabeled_epochs, lr(S.unlabeled_schedule), S.unlabeled_ratio, r.unlabeled_images or 0)
  end
  return table.concat(lines, "\n")
end

--- Writes results.md and accuracy.png (eval accuracy per epoch of every student) for a run.
function protocol.report(r, title)
  if r.settings.child_result then return "" end  -- a child's results are reported by its parent
  local text = protocol.table({r}, title) .. "\n\n" .. protocol.describe(r)
  print("\n" .. text)
  local f = assert(io.open(r.out .. "/results.md.tmp", "w")); f:write(text, "\n"); f:close()
  assert(os.rename(r.out .. "/results.md.tmp", r.out .. "/results.md"))
  local series = {}
  local function curve(res) local v = {} for i, h in ipairs(res.history) do v[i] = 100 * h.accuracy end return v end
  if r.alone then series[#series + 1] = {name = "student alone", values = curve(r.alone)} end
  if r.kd then series[#series + 1] = {name = "ss-kd", values = curve(r.kd)} end
  if r.kd_unlabeled then series[#series + 1] = {name = "ss-kd + unlabeled", values = curve(r.kd_unlabeled)} end
  if #series > 0 then
    plot.save{path = r.out .. "/accuracy.png", title = "eval accuracy (%) per epoch", series = series}
    print("plot: " .. r.out .. "/accuracy.png")
  end
  return text
end

return protocol
