// Optimizers and LR schedulers as userdata: `optim.SGD/Adam/AdamW(params, {...})` and
// `optim.lr_scheduler.StepLR(opt, {...})`... in PyTorch's names. `optim.Adam{lr = 1e-3}` without
// parameters gives a spec (a callable table) that the trainer builds with the model's parameters.
import CLua
import CLuaShim
import SSKDNN
import SSKDOptim
import SSKDTensor

enum OptimBindings {
    nonisolated(unsafe) static var optimizerType: Int32 = 0
    nonisolated(unsafe) static var schedulerType: Int32 = 0

    static func register() {
        let O = LuaTypes.register(Optimizer.self, name: "Optimizer",
            doc: "An optimizer (optim.SGD, optim.Adam, optim.AdamW): opt:zero_grad(); loss:backward(); opt:step().")
        optimizerType = O.type.id
        O.tostring { o in
            let g = o.paramGroups.first
            return "\(o.name)(lr=\(g?.lr ?? 0), weight_decay=\(g?.weightDecay ?? 0), groups=\(o.paramGroups.count), params=\(o.paramGroups.reduce(0) { $0 + $1.params.count }))"
        }
        O.method("step", "opt:step()", "updates every parameter that has a gradient") { _, o in try o.step(); return 0 }
        O.method("zero_grad", "opt:zero_grad()", "clears the gradients of the optimizer's parameters") { _, o in o.zeroGrad(); return 0 }
        O.field("lr", "learning rate of the first group (assigning sets every group)", get: { c, o in
            c.push(o.paramGroups.first?.lr ?? 0); return 1
        }, set: { c, o in
            let lr = try c.number(3)
            guard lr >= 0, lr.isFinite else { throw LuaError("\(c.name): invalid learning rate \(lr)") }
            for i in o.paramGroups.indices { o.paramGroups[i].lr = lr }
        })
        O.field("name", "the optimizer's class name") { c, o in c.pushString(o.name); return 1 }
        O.method("param_groups", "opt:param_groups() -> {{lr=, weight_decay=, params=}...}", "settings of each parameter group") { c, o in
            lua_createtable(c.L, Int32(o.paramGroups.count), 0)
            for (k, g) in o.paramGroups.enumerated() {
                lua_createtable(c.L, 0, 8)
                c.push(g.lr); c.setRawField(-2, "lr")
                c.push(g.weightDecay); c.setRawField(-2, "weight_decay")
                c.push(g.momentum); c.setRawField(-2, "momentum")
                c.push(g.beta1); c.setRawField(-2, "beta1")
                c.push(g.beta2); c.setRawField(-2, "beta2")
                c.push(g.eps); c.setRawField(-2, "eps")
                c.push(g.params.count); c.setRawField(-2, "params")
                lua_rawseti(c.L, -2, lua_Integer(k + 1))
            }
            return 1
        }
        O.method("add_param_group", "opt:add_param_group(params [, {lr=, weight_decay=}])", "adds parameters (a Module or tensors) with their own settings") { c, o in
            let ps = try c.parameterList(2)
            let opts = try c.options(3)
            let base = o.paramGroups.first
            var g = base ?? ParamGroup(params: [])
            g.params = ps
            if let lr = try opts.number("lr") { g.lr = lr }
            if let wd = try opts.number("weight_decay") { g.weightDecay = wd }
            try opts.finish()
            try o.addParamGroup(g)
            return 0
        }

        let optim = LuaLibraries.named("optim", doc: "Optimizers (torch.optim names). optim.Adam(params, {lr=}) builds one; optim.Adam{lr=} is a spec for the trainer.")
        optim.function("SGD", "optim.SGD(params, {lr=, momentum=0, dampening=0, weight_decay=0, nesterov=false, maximize=false})",
                       "stochastic gradient descent; params: a Module or a table of tensors") { c in
            let ps = try c.parameterList(1)
            let o = try c.options(2)
            guard let lr = try o.number("lr") else { throw LuaError("optim.SGD: option 'lr' is required") }
            let opt = try SGD(ps, lr: lr, momentum: try o.number("momentum") ?? 0, dampening: try o.number("dampening") ?? 0,
                              weightDecay: try o.number("weight_decay") ?? 0, nesterov: try o.bool("nesterov", default: false),
                              maximize: try o.bool("maximize", default: false))
            try o.finish()
            c.push(object: opt, type: optimizerType); return 1
        }
        func adam(_ name: String, decoupled: Bool) {
            optim.function(name, "optim.\(name)(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=\(decoupled ? "1e-2" : "0"), amsgrad=false, maximize=false})",
                           decoupled ? "Adam with decoupled weight decay" : "Adam") { c in
                let ps = try c.parameterList(1)
                let o = try c.options(2)
                let betas = try o.numbers("betas") ?? [0.9, 0.999]
                guard betas.count == 2 else { throw LuaError("bad option 'betas' to 'optim.\(name)' (two numbers expected)") }
                let lr = try o.number("lr") ?? 1e-3, eps = try o.number("eps") ?? 1e-8
                let wd = try o.number("weight_decay") ?? (decoupled ? 1e-2 : 0)
                let ams = try o.bool("amsgrad", default: false), maximize = try o.bool("maximize", default: false)
                try o.finish()
                let opt: Optimizer = decoupled
                    ? try AdamW(ps, lr: lr, betas: (betas[0], betas[1]), eps: eps, weightDecay: wd, amsgrad: ams, maximize: maximize)
                    : try Adam(ps, lr: lr, betas: (betas[0], betas[1]), eps: eps, weightDecay: wd, amsgrad: ams, maximize: maximize)
                c.push(object: opt, type: optimizerType); return 1
            }
        }
        adam("Adam", decoupled: false)
        adam("AdamW", decoupled: true)

        // LR schedulers.
        let S = LuaTypes.register(LRScheduler.self, name: "LRScheduler",
            doc: "A learning-rate scheduler (optim.lr_scheduler.*): call sched:step() once per epoch (or per batch for OneCycleLR).")
        schedulerType = S.type.id
        S.tostring { s in "\(s.schedule) at step \(s.lastEpoch), lr \(s.currentLRs)" }
        S.method("step", "sched:step()", "advances one step and sets the optimizer's learning rates") { _, s in s.step(); return 0 }
        S.method("get_last_lr", "sched:get_last_lr() -> {number...}", "the current learning rate of each group") { c, s in
            let lrs = s.currentLRs
            lua_createtable(c.L, Int32(lrs.count), 0)
            for (k, v) in lrs.enumerated() { c.push(v); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
            return 1
        }
        S.field("last_epoch", "number of step() calls so far") { c, s in c.push(s.lastEpoch); return 1 }
        S.field("optimizer", "the optimizer it drives") { c, s in c.push(object: s.optimizer, type: optimizerType); return 1 }

        let lrs = LuaLibraries.named("optim.lr_scheduler", doc: "Learning-rate schedulers (torch.optim.lr_scheduler names).")
        func scheduler(_ name: String, _ sig: String, _ summary: String, _ make: @escaping (Options) throws -> Schedule) {
            lrs.function(name, "optim.lr_scheduler.\(name)(optimizer, \(sig))", summary) { c in
                let opt = try c.object(1, Optimizer.self, expected: "Optimizer")
                let o = try c.options(2)
                let schedule = try make(o)
                try o.finish()
                c.push(object: try LRScheduler(opt, schedule), type: schedulerType); return 1
            }
        }
        func required(_ o: Options, _ key: String, _ fn: String) throws -> Double {
            guard let v = try o.number(key) else { throw LuaError("optim.lr_scheduler.\(fn): option '\(key)' is required") }
            return v
        }
        func requiredInt(_ o: Options, _ key: String, _ fn: String) throws -> Int {
            guard let v = try o.int(key) else { throw LuaError("optim.lr_scheduler.\(fn): option '\(key)' is required") }
            return v
        }
        scheduler("ConstantLR", "{}", "keeps the base learning rate") { _ in .constant }
        scheduler("StepLR", "{step_size=, gamma=0.1}", "lr * gamma every step_size steps") { o in
            .step(stepSize: try requiredInt(o, "step_size", "StepLR"), gamma: try o.number("gamma") ?? 0.1)
        }
        scheduler("MultiStepLR", "{milestones={...}, gamma=0.1}", "lr * gamma at each milestone") { o in
            guard let ms = try o.ints("milestones") else { throw LuaError("optim.lr_scheduler.MultiStepLR: option 'milestones' is required") }
            return .multiStep(milestones: ms, gamma: try o.number("gamma") ?? 0.1)
        }
        scheduler("ExponentialLR", "{gamma=}", "lr * gamma^t") { o in .exponential(gamma: try required(o, "gamma", "ExponentialLR")) }
        scheduler("CosineAnnealingLR", "{T_max=, eta_min=0, warmup_steps=0, warmup_start_factor=1/3}", "cosine annealing over T_max steps, with an optional linear warmup") { o in
            .cosine(totalSteps: try requiredInt(o, "T_max", "CosineAnnealingLR"), warmupSteps: try o.int("warmup_steps", default: 0),
                    warmupStartFactor: try o.number("warmup_start_factor") ?? 1.0 / 3.0, etaMin: try o.number("eta_min") ?? 0)
        }
        scheduler("OneCycleLR", "{max_lr=, total_steps=, pct_start=0.3, div_factor=25, final_div_factor=1e4, anneal_strategy='cos'}", "the one-cycle policy (step per batch)") { o in
            var c = Schedule.OneCycle(maxLR: try required(o, "max_lr", "OneCycleLR"), totalSteps: try requiredInt(o, "total_steps", "OneCycleLR"))
            if let v = try o.number("pct_start") { c.pctStart = v }
            if let v = try o.number("div_factor") { c.divFactor = v }
            if let v = try o.number("final_div_factor") { c.finalDivFactor = v }
            if let s = try o.string("anneal_strategy") {
                guard s == "cos" || s == "linear" else { throw LuaError("bad option 'anneal_strategy' to 'optim.lr_scheduler.OneCycleLR' (expected 'cos' or 'linear', got '\(s)')") }
                c.cosineAnnealing = s == "cos"
            }
            return .oneCycle(c)
        }
    }
}

