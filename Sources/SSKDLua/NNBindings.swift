// `nn` (layers and containers), `models` (torchvision architectures by name), `optim`
// (optimizers and LR schedules) and the Module / Optimizer / LRScheduler userdata types.
import CLua
import CLuaShim
import Foundation
import SSKDNN
import SSKDOptim
import SSKDTensor

extension LuaCall {
    public func module(_ i: Int32) throws -> Module { try object(i, Module.self, expected: "Module") }
}

enum NNBindings {
    static func register() {
        registerModule()
        registerLayers()
        registerModels()
        registerOptim()
    }

    /// Pushes a Lua table (1-based list) of tensors.
    static func push(tensors: [Tensor], _ c: LuaCall) {
        lua_createtable(c.L, Int32(tensors.count), 0)
        for (i, t) in tensors.enumerated() { _ = c.push(t); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
    }

    static func registerModule() {
        let M = LuaTypes.register(Module.self, name: "Module",
                                  doc: "A layer or model: m(x) runs it; parameters, train/eval, state dicts and safetensors files.")
        M.tostring { $0.description }
        M.meta("__call") { c in
            let m = try c.module(1)
            return c.push(try m(try c.tensor(2)))
        }
        M.method("forward", "m:forward(x) -> Tensor", "runs the module (same as m(x))") { c, m in c.push(try m(try c.tensor(2))) }
        M.method("parameters", "m:parameters() -> {Tensor...}", "the parameters (shared with the module: updates show)") { c, m in
            push(tensors: m.parameters(), c); return 1
        }
        M.method("named_parameters", "m:named_parameters() -> {name = Tensor}", "parameters by torchvision state-dict name") { c, m in
            lua_createtable(c.L, 0, 0)
            for (n, t) in m.namedParameters() { _ = c.push(t); c.setRawField(-2, n) }
            return 1
        }
        M.method("state_dict", "m:state_dict() -> {name = Tensor}", "parameters and buffers by name") { c, m in
            lua_createtable(c.L, 0, 0)
            for (n, t) in m.stateDict() { _ = c.push(t); c.setRawField(-2, n) }
            return 1
        }
        M.method("num_parameters", "m:num_parameters() -> integer", "number of parameter elements") { c, m in c.push(m.parameterCount); return 1 }
        M.method("train", "m:train([mode=true]) -> m", "training mode (dropout on, batch statistics)") { c, m in
            m.train(try c.optBool(2) ?? true); c.pushValue(1); return 1
        }
        M.method("eval", "m:eval() -> m", "evaluation mode (dropout off, running statistics)") { c, m in m.eval(); c.pushValue(1); return 1 }
        M.field("training", "whether the module is in training mode") { c, m in c.push(m.training); return 1 }
        M.method("zero_grad", "m:zero_grad()", "clears every parameter's gradient") { c, m in m.zeroGrad(); return 0 }
        M.method("requires_grad_", "m:requires_grad_([flag=true]) -> m", "freezes (false) or unfreezes the parameters") { c, m in
            m.requiresGrad(try c.optBool(2) ?? true); c.pushValue(1); return 1
        }
        M.method("get", "m:get(path) -> Module", "the submodule at a dotted path ('features.0.0', 'classifier.1')") { c, m in
            let p = try c.string(2)
            guard let s = m.submodule(p) else { throw c.argError(2, message: "no submodule '\(p)'") }
            try c.push(object: s); return 1
        }
        M.method("set", "m:set(path, module)", "replaces the submodule at a dotted path (e.g. a new classifier head)") { c, m in
            try m.setSubmodule(try c.string(2), try c.module(3)); return 0
        }
        M.method("save", "m:save(path [, {metadata}])", "writes the state dict as safetensors (atomically)") { c, m in
            let path = try c.string(2)
            var meta: [String: String] = [:]
            if !c.isNoneOrNil(3) {
                try c.table(3)
                for k in c.keys(3) { c.rawField(3, k); meta[k] = c.stringValue(-1) ?? String(describing: lua_tonumberx(c.L, -1, nil)); c.pop() }
            }
            try m.save(path, metadata: meta); return 0
        }
        M.method("load", "m:load(path [, {strict=true}]) -> report", "loads safetensors weights; strict=false skips missing, unexpected and mis-shaped keys and reports them") { c, m in
            let path = try c.string(2)
            let o = try c.options(3)
            let strict = try o.bool("strict", default: true)
            try o.finish()
            let report = try m.load(path, strict: strict)
            c.pushString(report.description); return 1
        }
        M.method("summary", "m:summary{C, H, W} -> string", "per-layer output shapes, parameters and multiply-adds for an input size (also printed)") { c, m in
            var shape = try c.ints(from: 2, what: "input size")
            if shape.count == 4 { shape.removeFirst() }
            guard shape.count == 3 else { throw c.argError(2, message: "input size must be {C, H, W}") }
            let s = try m.summary(input: shape)
            c.pushString(s.description); return 1
        }
    }

    static func registerLayers() {
        let nn = LuaLibraries.named("nn", doc: "Layers and containers (torch.nn names).")
        func layer(_ name: String, _ sig: String, _ summary: String, _ make: @escaping (LuaCall) throws -> Module) {
            nn.function(name, sig, summary) { c in try c.push(object: try make(c)); return 1 }
        }
        layer("Conv2d", "nn.Conv2d(in, out, kernel [, {stride=1, padding=0, dilation=1, groups=1, bias=true}]) -> Module", "2-D convolution") { c in
            let i = try c.int(1), o = try c.int(2), k = try c.intOrInts(3, what: "kernel size")
            let opt = try c.options(4)
            let m = try Conv2d(i, o, kernelSize: k, stride: try opt.ints("stride") ?? [1], padding: try opt.ints("padding") ?? [0],
                               dilation: try opt.ints("dilation") ?? [1], groups: try opt.int("groups", default: 1), bias: try opt.bool("bias", default: true))
            try opt.finish()
            return m
        }
        layer("BatchNorm2d", "nn.BatchNorm2d(channels [, {eps=1e-5, momentum=0.1}]) -> Module", "batch normalisation over [N, C, H, W]") { c in
            let n = try c.int(1)
            let o = try c.options(2)
            let m = try BatchNorm2d(n, eps: try o.number("eps") ?? 1e-5, momentum: try o.number("momentum") ?? 0.1)
            try o.finish()
            return m
        }
        layer("Linear", "nn.Linear(in, out [, {bias=true}]) -> Module", "x W^T + b") { c in
            let o = try c.options(3)
            let m = try Linear(try c.int(1), try c.int(2), bias: try o.bool("bias", default: true))
            try o.finish()
            return m
        }
        layer("ReLU", "nn.ReLU() -> Module", "max(x, 0)") { _ in ReLU() }
        layer("ReLU6", "nn.ReLU6() -> Module", "min(max(x, 0), 6)") { _ in ReLU6() }
        layer("SiLU", "nn.SiLU() -> Module", "x * sigmoid(x)") { _ in SiLU() }
        layer("Sigmoid", "nn.Sigmoid() -> Module", "1 / (1 + exp(-x))") { _ in Sigmoid() }
        layer("Hardswish", "nn.Hardswish() -> Module", "x * relu6(x + 3) / 6") { _ in Hardswish() }
        layer("Hardsigmoid", "nn.Hardsigmoid() -> Module", "relu6(x + 3) / 6") { _ in Hardsigmoid() }
        layer("Identity", "nn.Identity() -> Module", "returns its input") { _ in Identity() }
        layer("Flatten", "nn.Flatten([start_dim=1 [, end_dim=-1]]) -> Module", "flattens dims start..end") { c in
            Flatten(startDim: try c.int(1, default: 1), endDim: try c.int(2, default: -1))
        }
        layer("Dropout", "nn.Dropout([p=0.5]) -> Module", "zeroes elements with probability p in training") { c in
            try Dropout(p: try c.optNumber(1) ?? 0.5)
        }
        layer("AdaptiveAvgPool2d", "nn.AdaptiveAvgPool2d(size) -> Module", "average pooling to a fixed output size") { c in
            AdaptiveAvgPool2d(outputSize: try c.intOrInts(1, what: "output size"))
        }
        layer("MaxPool2d", "nn.MaxPool2d(kernel [, {stride=kernel, padding=0}]) -> Module", "max pooling") { c in
            let k = try c.intOrInts(1, what: "kernel size")
            let o = try c.options(2)
            let m = MaxPool2d(kernelSize: k, stride: try o.ints("stride"), padding: try o.ints("padding") ?? [0])
            try o.finish()
            return m
        }
        layer("AvgPool2d", "nn.AvgPool2d(kernel [, {stride=kernel, padding=0}]) -> Module", "average pooling") { c in
            let k = try c.intOrInts(1, what: "kernel size")
            let o = try c.options(2)
            let m = AvgPool2d(kernelSize: k, stride: try o.ints("stride"), padding: try o.ints("padding") ?? [0])
            try o.finish()
            return m
        }
        layer("Sequential", "nn.Sequential{m1, m2, ...} -> Module", "runs the modules in order (children named 0, 1, ...)") { c in
            try c.table(1)
            let n = Int(lua_rawlen(c.L, 1))
            var ms: [Module] = []
            for k in 0..<n {
                lua_rawgeti(c.L, 1, lua_Integer(k + 1))
                defer { c.pop() }
                guard let m = c.toObject(-1, Module.self) else { throw c.argError(1, message: "entry \(k + 1) is not a Module (got \(c.typeName(-1)))") }
                ms.append(m)
            }
            return Sequential(ms)
        }
    }

    static func registerModels() {
        let models = LuaLibraries.named("models", doc: "torchvision architectures: mobilenet_v2, efficientnet_b0 ... b7.")
        models.function("names", "models.names() -> {string...}", "the model names models.* knows") { c in
            lua_createtable(c.L, Int32(Models.names.count), 0)
            for (i, n) in Models.names.enumerated() { c.pushString(n); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
            return 1
        }
        models.function("mobilenet_v2", "models.mobilenet_v2{classes=1000, width=1.0, dropout=0.2, in_channels=3, weights=nil, strict=false} -> Module",
                        "MobileNetV2 (torchvision); weights: a safetensors file loaded non-strictly by default (an ImageNet checkpoint into a 10-class head)") { c in
            let o = try c.options(1)
            var cfg = MobileNetV2.Config(classes: try o.int("classes", default: 1000), widthMult: try o.number("width") ?? 1,
                                         dropout: try o.number("dropout") ?? 0.2, inputChannels: try o.int("in_channels", default: 3))
            cfg.roundNearest = try o.int("round_nearest", default: 8)
            let weights = try o.string("weights")
            let strict = try o.bool("strict", default: false)
            try o.finish()
            let m = try MobileNetV2(cfg)
            if let weights { print("models.mobilenet_v2: " + (try m.load(weights, strict: strict)).description) }
            try c.push(object: m); return 1
        }
        for n in 0...7 {
            models.function("efficientnet_b\(n)", "models.efficientnet_b\(n){classes=1000, in_channels=3, width=, depth=, dropout=, stochastic_depth=0.2, weights=nil, strict=false} -> Module",
                            "EfficientNet-B\(n) (torchvision's compound scaling; width/depth override the multipliers)") { c in
                let o = try c.options(1)
                var cfg = try EfficientNet.Config.variant(n, classes: try o.int("classes", default: 1000))
                cfg.inputChannels = try o.int("in_channels", default: 3)
                if let w = try o.number("width") { cfg.widthMult = w }
                if let d = try o.number("depth") { cfg.depthMult = d }
                if let p = try o.number("dropout") { cfg.dropout = p }
                if let p = try o.number("stochastic_depth") { cfg.stochasticDepthProb = p }
                let weights = try o.string("weights")
                let strict = try o.bool("strict", default: false)
                try o.finish()
                let m = try EfficientNet(cfg)
                if let weights { print("models.efficientnet_b\(n): " + (try m.load(weights, strict: strict)).description) }
                try c.push(object: m); return 1
            }
        }
    }

    /// Parameters from argument `i`: a Module (its parameters) or a table of tensors.
    static func params(_ c: LuaCall, _ i: Int32) throws -> [Tensor] {
        if let m = c.toObject(i, Module.self) { return m.parameters() }
        guard c.type(i) == LUA_TTABLE else { throw c.argError(i, "Module or table of Tensors") }
        var out: [Tensor] = []
        for k in 1...max(1, Int(lua_rawlen(c.L, i))) where k <= Int(lua_rawlen(c.L, i)) {
            lua_rawgeti(c.L, i, lua_Integer(k)); defer { c.pop() }
            guard let t = c.toObject(-1, Tensor.self) else { throw c.argError(i, message: "entry \(k) is not a Tensor") }
            out.append(t)
        }
        return out
    }

    static func registerOptim() {
        let O = LuaTypes.register(Optimizer.self, name: "Optimizer", doc: "An optimizer over parameters (SGD, Adam, AdamW with PyTorch's rules).")
        O.tostring { o in "\(o.name)(lr=\(o.paramGroups.first?.lr ?? 0), params=\(o.paramGroups.reduce(0) { $0 + $1.params.count }))" }
        O.method("step", "opt:step()", "applies one update to every parameter with a gradient") { c, o in try o.step(); return 0 }
        O.method("zero_grad", "opt:zero_grad()", "clears the gradients") { c, o in o.zeroGrad(); return 0 }
        O.field("lr", "learning rate of the first parameter group (assignable: sets every group)", get: { c, o in
            c.push(o.paramGroups.first?.lr ?? 0); return 1
        }, set: { c, o in
            let lr = try c.number(3)
            guard lr >= 0, lr.isFinite else { throw c.argError(3, message: "learning rate must be a finite number >= 0") }
            for i in o.paramGroups.indices { o.paramGroups[i].lr = lr }
        })

        let S = LuaTypes.register(LRScheduler.self, name: "LRScheduler", doc: "A learning-rate schedule over an optimizer (step() once per epoch, or per batch for one-cycle).")
        S.tostring { "LRScheduler(\($0.schedule), epoch \($0.lastEpoch))" }
        S.method("step", "sched:step()", "advances the schedule and sets the optimizer's learning rates") { c, s in s.step(); return 0 }
        S.method("get_last_lr", "sched:get_last_lr() -> number", "the current learning rate of the first group") { c, s in c.push(s.currentLRs.first ?? 0); return 1 }

        let optim = LuaLibraries.named("optim", doc: "Optimizers and LR schedules (torch.optim names).")
        optim.function("Adam", "optim.Adam(model_or_params [, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=0, amsgrad=false}]) -> Optimizer", "Adam") { c in
            try makeAdam(c, decoupled: false)
        }
        optim.function("AdamW", "optim.AdamW(model_or_params [, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=0.01, amsgrad=false}]) -> Optimizer", "AdamW (decoupled weight decay)") { c in
            try makeAdam(c, decoupled: true)
        }
        optim.function("SGD", "optim.SGD(model_or_params, {lr=, momentum=0, dampening=0, nesterov=false, weight_decay=0}) -> Optimizer", "stochastic gradient descent") { c in
            let ps = try params(c, 1)
            let o = try c.options(2)
            guard let lr = try o.number("lr") else { throw LuaError("\(c.name): option 'lr' is required") }
            let opt = try SGD(ps, lr: lr, momentum: try o.number("momentum") ?? 0, dampening: try o.number("dampening") ?? 0,
                              weightDecay: try o.number("weight_decay") ?? 0, nesterov: try o.bool("nesterov", default: false))
            try o.finish()
            try c.push(object: opt); return 1
        }
        func sched(_ name: String, _ sig: String, _ summary: String, _ make: @escaping (Options) throws -> Schedule) {
            optim.function(name, sig, summary) { c in
                let opt = try c.object(1, Optimizer.self, expected: "Optimizer")
                let o = try c.options(2)
                let s = try make(o)
                try o.finish()
                try c.push(object: try LRScheduler(opt, s)); return 1
            }
        }
        sched("StepLR", "optim.StepLR(opt, {step_size=, gamma=0.1}) -> LRScheduler", "decays by gamma every step_size epochs") { o in
            guard let s = try o.int("step_size") else { throw LuaError("optim.StepLR: option 'step_size' is required") }
            return .step(stepSize: s, gamma: try o.number("gamma") ?? 0.1)
        }
        sched("MultiStepLR", "optim.MultiStepLR(opt, {milestones={...}, gamma=0.1}) -> LRScheduler", "decays by gamma at each milestone epoch") { o in
            guard let m = try o.ints("milestones") else { throw LuaError("optim.MultiStepLR: option 'milestones' is required") }
            return .multiStep(milestones: m, gamma: try o.number("gamma") ?? 0.1)
        }
        sched("ExponentialLR", "optim.ExponentialLR(opt, {gamma=}) -> LRScheduler", "multiplies by gamma every epoch") { o in
            guard let g = try o.number("gamma") else { throw LuaError("optim.ExponentialLR: option 'gamma' is required") }
            return .exponential(gamma: g)
        }
        sched("CosineLR", "optim.CosineLR(opt, {total=, warmup=0, eta_min=0}) -> LRScheduler", "cosine annealing over total steps after a linear warmup") { o in
            guard let t = try o.int("total") else { throw LuaError("optim.CosineLR: option 'total' is required") }
            return .cosine(totalSteps: t, warmupSteps: try o.int("warmup", default: 0), etaMin: try o.number("eta_min") ?? 0)
        }
        sched("OneCycleLR", "optim.OneCycleLR(opt, {max_lr=, total=, pct_start=0.3}) -> LRScheduler", "one-cycle policy (step per batch)") { o in
            guard let m = try o.number("max_lr"), let t = try o.int("total") else { throw LuaError("optim.OneCycleLR: options 'max_lr' and 'total' are required") }
            var oc = Schedule.OneCycle(maxLR: m, totalSteps: t)
            oc.pctStart = try o.number("pct_start") ?? 0.3
            return .oneCycle(oc)
        }
    }

    static func makeAdam(_ c: LuaCall, decoupled: Bool) throws -> Int32 {
        let ps = try params(c, 1)
        let o = try c.options(2)
        let lr = try o.number("lr") ?? 1e-3
        let betas = try o.numbers("betas") ?? [0.9, 0.999]
        guard betas.count == 2 else { throw LuaError("\(c.name): betas must be {beta1, beta2}") }
        let eps = try o.number("eps") ?? 1e-8
        let wd = try o.number("weight_decay") ?? (decoupled ? 0.01 : 0)
        let ams = try o.bool("amsgrad", default: false)
        try o.finish()
        let opt: Optimizer = decoupled
            ? try AdamW(ps, lr: lr, betas: (betas[0], betas[1]), eps: eps, weightDecay: wd, amsgrad: ams)
            : try Adam(ps, lr: lr, betas: (betas[0], betas[1]), eps: eps, weightDecay: wd, amsgrad: ams)
        try c.push(object: opt); return 1
    }
}
