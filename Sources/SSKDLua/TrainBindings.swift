// `fit{...}` and `distill{...}`: the Swift training loop driven from a recipe. The loop runs in
// Swift; the recipe's Lua functions (alpha schedule, loss, stopping rule, hooks) are called back
// through protected calls while the options table stays at stack index 1 of this call.
import CLua
import CLuaShim
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SSKDData
import SSKDDist
import SSKDNN
import SSKDOptim
import SSKDTensor
import SSKDTrain

enum TrainBindings {
    static func register() {
        let g = LuaLibraries.named("", doc: "Globals")
        g.function("fit", "fit{model=, train=, eval=, epochs=, ...} -> result",
                   "supervised training with evaluation every epoch (see docs/lua-api.md, \"Training\")") { c in
            try run(c, distill: false)
        }
        g.function("distill", "distill{teacher=, student=, train=, eval=, epochs=, alpha=, loss=, temperature=3, ...} -> result",
                   "SS-KD: the student learns from labels and the teacher's soft targets (see docs/lua-api.md, \"Training\")") { c in
            try run(c, distill: true)
        }
        let plot = LuaLibraries.named("plot", doc: "Line charts to PNG (the per-epoch curves of a run).")
        plot.function("save", "plot.save{path=, title=, xlabel='epoch', series={{name=, values={...}}, ...}} or plot.save{path=, panels={{title=, series=}, ...}}",
                      "writes a PNG line chart: one panel, or several side by side; values are per epoch (nil = missing)") { c in
            try savePlot(c)
        }
        g.function("__sskd_mtime", "__sskd_mtime(path) -> number or nil", "modification time of a file in seconds (for --watch)") { c in
            var st = stat()
            guard stat(try c.string(1), &st) == 0 else { c.pushNil(); return 1 }
            c.push(Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9)
            return 1
        }
        g.function("evaluate", "evaluate(model, dataset [, {transform=, batch=256}]) -> {accuracy=, loss=, per_class=, confusion=}",
                   "accuracy, loss, per-class accuracy and confusion matrix on a labelled dataset") { c in
            let model = try c.object(1, Module.self, expected: "Module")
            let ds = try c.dataset(2)
            let o = try c.options(3)
            let tf = try o.transform("transform")
            let batch = try o.int("batch", default: 256)
            try o.finish()
            pushEvaluation(c, try evaluate(model, on: ds, transform: tf, batchSize: batch))
            return 1
        }
    }

    static func savePlot(_ c: LuaCall) throws -> Int32 {
        try c.table(1)
        let o = try c.options(1)
        guard let path = try o.string("path") else { throw LuaError("\(c.name): option 'path' is required") }
        let hasPanels = o.has("panels"), hasSeries = o.has("series")
        let title = try o.string("title") ?? ""
        let xlabel = try o.string("xlabel") ?? "epoch"
        try o.finish()
        guard hasPanels != hasSeries else { throw LuaError("\(c.name): give either 'series' (one panel) or 'panels'") }
        func readSeries(_ t: Int32, panel: Int) throws -> [LinePlot.Series] {
            guard lua_type(c.L, t) == LUA_TTABLE else { throw LuaError("\(c.name): panel \(panel): 'series' must be a table of {name=, values=}") }
            var out: [LinePlot.Series] = []
            for k in 1...max(1, Int(lua_rawlen(c.L, t))) where k <= Int(lua_rawlen(c.L, t)) {
                lua_rawgeti(c.L, t, lua_Integer(k)); defer { c.pop() }
                let s = lua_gettop(c.L)
                guard lua_type(c.L, s) == LUA_TTABLE else { throw LuaError("\(c.name): series \(k) must be a table {name=, values=}") }
                c.rawField(s, "name"); let name = c.stringValue(-1) ?? "series \(k)"; c.pop()
                guard c.rawField(s, "values") == LUA_TTABLE else { c.pop(); throw LuaError("\(c.name): series \(k) needs 'values' (a table of numbers)") }
                let n = Int(lua_rawlen(c.L, -1))
                var vals: [Double?] = []
                for i in 0..<n {
                    lua_rawgeti(c.L, -1, lua_Integer(i + 1))
                    vals.append(lua_type(c.L, -1) == LUA_TNUMBER ? lua_tonumberx(c.L, -1, nil) : nil)
                    c.pop()
                }
                c.pop()
                out.append(.init(name: name, values: vals, color: LinePlot.palette[(k - 1) % LinePlot.palette.count]))
            }
            return out
        }
        var panels: [LinePlot.Panel] = []
        if hasSeries {
            c.rawField(1, "series"); defer { c.pop() }
            panels = [.init(title: title, xLabel: xlabel, series: try readSeries(lua_gettop(c.L), panel: 1))]
        } else {
            c.rawField(1, "panels"); defer { c.pop() }
            let pt = lua_gettop(c.L)
            guard lua_type(c.L, pt) == LUA_TTABLE else { throw LuaError("\(c.name): 'panels' must be a table") }
            for k in 1...max(1, Int(lua_rawlen(c.L, pt))) where k <= Int(lua_rawlen(c.L, pt)) {
                lua_rawgeti(c.L, pt, lua_Integer(k)); defer { c.pop() }
                let p = lua_gettop(c.L)
                guard lua_type(c.L, p) == LUA_TTABLE else { throw LuaError("\(c.name): panel \(k) must be a table {title=, series=}") }
                c.rawField(p, "title"); let t = c.stringValue(-1) ?? ""; c.pop()
                c.rawField(p, "xlabel"); let xl = c.stringValue(-1) ?? "epoch"; c.pop()
                c.rawField(p, "series"); defer { c.pop() }
                panels.append(.init(title: t, xLabel: xl, series: try readSeries(lua_gettop(c.L), panel: k)))
            }
        }
        try LinePlot(panels: panels).writePNG(to: path)
        return 0
    }

    /// Runs `sskd._epoch_boundary(options)` (the --watch reloader) in protected mode.
    static func epochBoundary(_ c: LuaCall) throws {
        let L = c.L
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        sskd_pushglobaltable(L)
        guard c.rawField(-1, "sskd") == LUA_TTABLE, c.rawField(-1, "_epoch_boundary") == LUA_TFUNCTION else { return }
        c.pushValue(1)
        guard sskd_pcall(L, 1, 0, 1) == LUA_OK else { throw LuaError(c.stringValue(-1) ?? "reload failed") }
    }

    /// Leaves the recipe and its resolved settings in the run directory: `recipe.lua` (a copy of
    /// the running script, `arg[0]`) and `settings.json` (the script's `--set` values and this
    /// call's resolved scalar settings).
    static func recordRecipe(_ c: LuaCall, _ run: RunDirectory, settings s: TrainSettings, distill: Bool) throws {
        let L = c.L
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        var fields: [(String, MetricValue)] = [("function", .string(distill ? "distill" : "fit")), ("name", .string(s.name)),
            ("epochs", .int(s.epochs)), ("batch", .int(s.batchSize)), ("eval_batch", .int(s.evalBatchSize)),
            ("seed", .string(String(s.seed))), ("temperature", .number(s.temperature)), ("metric", .string(s.metric)),
            ("drop_last", .int(s.dropLast ? 1 : 0)), ("limit_batches", s.limitBatches.map { .int($0) } ?? .null)]
        sskd_pushglobaltable(L)
        if c.rawField(-1, "arg") == LUA_TTABLE {
            let t = lua_gettop(L)
            lua_rawgeti(L, t, 0)
            if let script = c.stringValue(-1), let text = try? String(contentsOfFile: script, encoding: .utf8) {
                try run.write("recipe.lua", text: text)
                fields.append(("recipe", .string(script)))
            }
            c.pop()
            for k in c.keys(t).sorted() {
                c.rawField(t, k)
                switch lua_type(L, -1) {
                case LUA_TNUMBER: fields.append(("set." + k, .number(lua_tonumberx(L, -1, nil))))
                case LUA_TBOOLEAN: fields.append(("set." + k, .int(lua_toboolean(L, -1) != 0 ? 1 : 0)))
                default: if let v = c.stringValue(-1) { fields.append(("set." + k, .string(v))) }
                }
                c.pop()
            }
        }
        try run.write("settings.json", text: MetricRow(fields).json + "\n")
    }

    /// Calls the Lua value stored under `key` in the options table (index 1) with arguments
    /// pushed by `push`, in protected mode; `read` reads the results (at -nresults...-1).
    static func callOption<R>(_ c: LuaCall, _ key: String, method: String? = nil, nargs: Int32, nresults: Int32,
                              push: () throws -> Void, read: () throws -> R) throws -> R {
        let L = c.L
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        try c.reserve(nargs + 8)
        c.rawField(1, key)
        var n = nargs
        if let method {
            // obj:method(...): push obj.method, then obj as the first argument.
            let obj = lua_gettop(L)
            guard lua_type(L, obj) == LUA_TTABLE else { throw LuaError("option '\(key)' is not an object with a '\(method)' method") }
            c.rawField(obj, method)
            guard lua_type(L, -1) == LUA_TFUNCTION else { throw LuaError("option '\(key)' has no '\(method)' method") }
            lua_rotate(L, obj, 1)  // method below obj
            n += 1
        }
        try push()
        guard sskd_pcall(L, n, nresults, 1) == LUA_OK else {
            throw LuaError(c.stringValue(-1) ?? "(error object is a \(c.typeName(-1)))")
        }
        return try read()
    }

    /// The Lua history: records with the row's fields plus `accuracy` and `loss` naming the
    /// selection metrics (eval split when there is one, else training).
    static func pushHistory(_ c: LuaCall, _ rows: [MetricRow]) {
        lua_createtable(c.L, Int32(rows.count), 0)
        var elapsed = 0.0
        for (i, r) in rows.enumerated() {
            elapsed += r["seconds"]?.double ?? 0
            pushRecord(c, r, time: elapsed)
            lua_rawseti(c.L, -2, lua_Integer(i + 1))
        }
    }

    /// One record: the row's fields, `accuracy`/`loss` aliases, and `epoch_time` (the epoch's
    /// seconds) and `time` (seconds since training began) as the stopper plugins expect.
    static func pushRecord(_ c: LuaCall, _ r: MetricRow, time: Double? = nil) {
        lua_createtable(c.L, 0, Int32(r.fields.count + 2))
        for (k, v) in r.fields {
            switch v {
            case .int(let i): c.push(i)
            case .number(let d): c.push(d)
            case .string(let s): c.pushString(s)
            case .null: continue
            }
            c.setRawField(-2, k)
        }
        for (alias, keys) in [("accuracy", ["eval_accuracy", "train_accuracy"]), ("loss", ["eval_loss", "train_loss"])] {
            if let v = keys.lazy.compactMap({ r[$0]?.double }).first { c.push(v); c.setRawField(-2, alias) }
        }
        if let s = r["seconds"]?.double {
            c.push(s); c.setRawField(-2, "epoch_time")
            c.push(time ?? s); c.setRawField(-2, "time")
        }
    }

    static func pushEvaluation(_ c: LuaCall, _ e: Evaluation) {
        lua_createtable(c.L, 0, 5)
        c.push(e.accuracy); c.setRawField(-2, "accuracy")
        c.push(e.loss); c.setRawField(-2, "loss")
        c.push(e.count); c.setRawField(-2, "count")
        lua_createtable(c.L, Int32(e.confusion.count), 0)
        for (i, a) in e.perClassAccuracy.enumerated() { if let a { c.push(a) } else { c.pushNil() }; lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        c.setRawField(-2, "per_class")
        lua_createtable(c.L, Int32(e.confusion.count), 0)
        for (i, row) in e.confusion.enumerated() { c.push(ints: row); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        c.setRawField(-2, "confusion")
        c.pushString(e.table); c.setRawField(-2, "table")
    }

    static func run(_ c: LuaCall, distill: Bool) throws -> Int32 {
        try c.table(1)
        let o = try c.options(1)
        let modelKey = distill ? "student" : "model"
        guard let model = try o.object(modelKey, Module.self, expected: "Module") else { throw LuaError("\(c.name): option '\(modelKey)' (a model) is required") }
        let teacher = distill ? try o.object("teacher", Module.self, expected: "Module") : nil
        if distill && teacher == nil { throw LuaError("\(c.name): option 'teacher' (a model) is required") }
        guard let train = try o.dataset("train") else { throw LuaError("\(c.name): option 'train' (a Dataset) is required") }
        guard let epochs = try o.int("epochs") else { throw LuaError("\(c.name): option 'epochs' is required") }
        var s = TrainSettings(epochs: epochs)
        s.name = try o.string("name") ?? (distill ? "student (SS-KD)" : "model")
        s.batchSize = try o.int("batch", default: 32)
        s.evalBatchSize = try o.int("eval_batch", default: 256)
        s.seed = UInt64(bitPattern: Int64(try o.int("seed", default: 0)))
        s.dropLast = try o.bool("drop_last", default: false)
        s.temperature = try o.number("temperature") ?? 3
        s.unlabeledRatio = try o.number("unlabeled_ratio") ?? 1
        s.metric = try o.string("metric") ?? "accuracy"
        s.limitBatches = try o.int("limit_batches")
        s.restoreBest = try o.bool("restore_best", default: true)
        s.schedulerPerBatch = try o.bool("scheduler_per_batch", default: false)

        // Scripted parts. Each is looked up in the options table when called.
        let L = c.L
        func kind(_ key: String) -> Int32 { let t = c.rawField(1, key); c.pop(); return t }
        func isCallable(_ key: String) -> Bool {
            c.rawField(1, key); defer { c.pop() }
            if lua_type(L, -1) == LUA_TFUNCTION { return true }
            guard lua_getmetatable(L, -1) != 0 else { return false }
            let hasCall = c.rawField(-1, "__call") != LUA_TNIL
            c.pop(2)
            return hasCall
        }

        // optimizer: an Optimizer, a spec (optim.Adam{lr = ...}) called with the model, or nil
        // for Adam with `lr` (default 1e-3).
        let optimizer: Optimizer
        if kind("optimizer") == LUA_TNIL {
            optimizer = try Adam(model.parameters(), lr: try o.number("lr") ?? 1e-3)
        } else if let opt = c.toObject({ c.rawField(1, "optimizer"); return -1 }(), Optimizer.self) {
            c.pop(); _ = o.has("optimizer")
            optimizer = opt
        } else {
            c.pop(); _ = o.has("optimizer")
            guard isCallable("optimizer") else { throw LuaError("bad option 'optimizer' to '\(c.name)' (an Optimizer or a spec such as optim.Adam{lr = 1e-3} expected)") }
            optimizer = try callOption(c, "optimizer", nargs: 1, nresults: 1, push: { try c.push(object: model) }) {
                guard let opt = c.toObject(-1, Optimizer.self) else { throw LuaError("option 'optimizer' returned \(c.typeName(-1)), expected an Optimizer") }
                return opt
            }
        }
        let trainer = try Trainer(model: model, optimizer: optimizer, train: train, settings: s)
        trainer.teacher = teacher
        // scheduler: an LRScheduler, or a function(optimizer) -> LRScheduler.
        if kind("scheduler") != LUA_TNIL {
            _ = o.has("scheduler")
            c.rawField(1, "scheduler")
            let direct = c.toObject(-1, LRScheduler.self)
            c.pop()
            if let direct { trainer.scheduler = direct } else {
                guard isCallable("scheduler") else { throw LuaError("bad option 'scheduler' to '\(c.name)' (an LRScheduler or function(optimizer) expected)") }
                trainer.scheduler = try callOption(c, "scheduler", nargs: 1, nresults: 1, push: { try c.push(object: optimizer) }) {
                    guard let sch = c.toObject(-1, LRScheduler.self) else { throw LuaError("option 'scheduler' returned \(c.typeName(-1)), expected an LRScheduler") }
                    return sch
                }
            }
        }
        trainer.eval = try o.dataset("eval")
        trainer.test = try o.dataset("test")
        trainer.unlabeled = try o.dataset("unlabeled")
        trainer.augment = try o.transform("augment")
        trainer.evalTransform = try o.transform("eval_transform")
        if try o.bool("quiet", default: false) { trainer.progress = Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!) }
        let runPath = try o.string("run")
        let resume = try o.bool("resume", default: false)
        // Under mpirun: split over every rank unless the recipe keeps this run to its rank (a sweep's share).
        if try o.bool("distributed", default: true) { trainer.communicator = try Communicator.world() }
        let comm = trainer.communicator

        switch kind("alpha") {
        case LUA_TNIL: trainer.alpha = { e, _ in distill ? Distillation.paperAlpha(epoch: e) : 0 }
        case LUA_TNUMBER:
            let a = try o.number("alpha")!
            trainer.alpha = { _, _ in a }
        default:
            _ = o.has("alpha")
            guard isCallable("alpha") else { throw LuaError("bad option 'alpha' to '\(c.name)' (number or function(epoch, history) expected)") }
            trainer.alpha = { e, h in
                try callOption(c, "alpha", nargs: 2, nresults: 1, push: { c.push(e); pushHistory(c, h) }) {
                    guard lua_type(L, -1) == LUA_TNUMBER else { throw LuaError("the alpha function returned \(c.typeName(-1)) for epoch \(e), expected a number") }
                    return lua_tonumberx(L, -1, nil)
                }
            }
        }
        if kind("loss") != LUA_TNIL {
            _ = o.has("loss")
            guard isCallable("loss") else { throw LuaError("bad option 'loss' to '\(c.name)' (function(student, teacher, labels, alpha, T) expected)") }
            trainer.loss = { st, te, y, a, T in
                try callOption(c, "loss", nargs: 5, nresults: 1, push: {
                    _ = c.push(st)
                    if let te { _ = c.push(te) } else { c.pushNil() }
                    if let y { _ = c.push(y) } else { c.pushNil() }
                    c.push(a); c.push(T)
                }) {
                    guard let t = c.toObject(-1, Tensor.self) else { throw LuaError("the loss function returned \(c.typeName(-1)), expected a Tensor") }
                    return t
                }
            }
        }
        switch kind("stop") {
        case LUA_TNIL: break
        case LUA_TTABLE where !isCallable("stop"):
            _ = o.has("stop")
            // A stopper object: stop:step(history) -> should_stop [, reason]; replayed on resume.
            let progress = trainer.progress
            trainer.stopper = { h in
                try callOption(c, "stop", method: "step", nargs: 1, nresults: 2, push: { pushHistory(c, h) }) {
                    if lua_toboolean(L, -2) != 0, let why = c.stringValue(-1) { progress.line("\(s.name): early stop: \(why)") }
                    return lua_toboolean(L, -2) != 0
                }
            }
        default:
            _ = o.has("stop")
            guard isCallable("stop") else { throw LuaError("bad option 'stop' to '\(c.name)' (a stopper or function(history) expected)") }
            trainer.stopper = { h in
                try callOption(c, "stop", nargs: 1, nresults: 1, push: { pushHistory(c, h) }) { lua_toboolean(L, -1) != 0 }
            }
        }
        for key in ["on_epoch_start", "on_epoch_end"] where kind(key) != LUA_TNIL {
            _ = o.has(key)
            guard isCallable(key) else { throw LuaError("bad option '\(key)' to '\(c.name)' (function expected)") }
        }
        // Every epoch starts at a boundary where --watch reloads edited plugins and sskd.hot files.
        let hasStartHook = kind("on_epoch_start") != LUA_TNIL
        trainer.onEpochStart = { e in
            try epochBoundary(c)
            if hasStartHook { try callOption(c, "on_epoch_start", nargs: 1, nresults: 0, push: { c.push(e) }) {} }
        }
        if kind("on_epoch_end") != LUA_TNIL {
            trainer.onEpochEnd = { e, row in try callOption(c, "on_epoch_end", nargs: 2, nresults: 0, push: { c.push(e); pushRecord(c, row) }) {} }
        }
        try o.finish()

        if let runPath, comm.isMain {
            // Rank 0 alone writes the run directory (the others may not even share its disk).
            let run = try RunDirectory(path: runPath)
            trainer.run = run
            trainer.summaryExtra.append(("teacher", .string(teacher.map { "\(type(of: $0))" } ?? "none")))
            try recordRecipe(c, run, settings: s, distill: distill)
        }
        if resume {
            guard runPath != nil else { throw LuaError("\(c.name): resume = true needs run = 'runs/<name>'") }
            try trainer.resume()
            // A stopper object keeps state: replay the restored history into it.
            if trainer.stopper != nil && kind("stop") == LUA_TTABLE && !isCallable("stop") {
                let h = trainer.history
                for k in 0..<h.count { _ = try trainer.stopper!(Array(h.prefix(k + 1))) }
            }
        }
        let result = try trainer.fit()
        if result.reason == .interrupted {
            // Ctrl-C ends the recipe, not just this phase (sskd run exits with status 130).
            throw LuaError("\(s.name): interrupted (SIGINT) after \(result.epochsRun) complete epoch(s)"
                + (runPath.map { "; the last complete epoch's checkpoint is in \($0) (resume = true continues it)" } ?? ""))
        }

        lua_createtable(L, 0, 12)
        c.pushString(result.reason.rawValue); c.setRawField(-2, "status")
        c.push(result.epochsRun); c.setRawField(-2, "epochs")
        if let b = result.bestEpoch { c.push(b); c.setRawField(-2, "best_epoch") }
        if let m = result.bestMetric { c.push(m); c.setRawField(-2, "best_metric") }
        c.push(result.seconds); c.setRawField(-2, "seconds")
        if let e = result.eval {
            c.push(e.accuracy); c.setRawField(-2, "accuracy")
            pushEvaluation(c, e); c.setRawField(-2, "eval")
        }
        if let t = result.test {
            c.push(t.accuracy); c.setRawField(-2, "test_accuracy")
            pushEvaluation(c, t); c.setRawField(-2, "test")
        }
        pushHistory(c, result.history); c.setRawField(-2, "history")
        if let runPath { c.pushString(runPath); c.setRawField(-2, "run") }
        return 1
    }
}
