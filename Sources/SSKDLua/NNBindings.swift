// Modules and models as userdata: `nn.*` layer constructors, `models.*` (torchvision
// architectures), and the Module methods (call, parameters, train/eval, summary, save/load).
import CLua
import CLuaShim
import SSKDExport
import SSKDNN
import SSKDTensor
import SSKDTrain

extension LuaCall {
    public func module(_ i: Int32) throws -> Module {
        if let box = sskd_to_box(L, i), box.pointee.type == NNBindings.typeID, let p = box.pointee.object {
            return Unmanaged<Module>.fromOpaque(p).takeUnretainedValue()
        }
        return try object(i, Module.self, expected: "Module")
    }

    @discardableResult
    public func push(_ m: Module) -> Int32 {
        push(object: m, type: NNBindings.typeID)
        return 1
    }

    /// Parameters given as a Module (its parameters) or a Lua array of tensors.
    func parameterList(_ i: Int32) throws -> [Tensor] {
        if let m = toObject(i, Module.self) { return m.parameters() }
        guard lua_type(L, i) == LUA_TTABLE else { throw argError(i, "Module or table of tensors (parameters)") }
        return try tensors(i)
    }
}

/// Pushes a Lua array of `{name, value}` pairs.
func pushPairs<T>(_ c: LuaCall, _ items: [(String, T)], _ push: (T) -> Void) {
    lua_createtable(c.L, Int32(items.count), 0)
    for (k, (name, v)) in items.enumerated() {
        lua_createtable(c.L, 2, 0)
        c.pushString(name); lua_rawseti(c.L, -2, 1)
        push(v); lua_rawseti(c.L, -2, 2)
        lua_rawseti(c.L, -2, lua_Integer(k + 1))
    }
}

/// A table name -> tensor from the Lua table at `i` (a state dict).
func stateDictFromLua(_ c: LuaCall, _ i: Int32) throws -> StateDict {
    try c.table(i)
    var sd = StateDict()
    let idx = lua_absindex(c.L, i)
    lua_pushnil(c.L)
    while lua_next(c.L, idx) != 0 {
        defer { c.pop() }
        guard let k = c.stringValue(-2) else { throw c.argError(i, message: "state dict keys must be strings") }
        guard let t = c.toObject(-1, Tensor.self) else { throw c.argError(i, message: "state dict entry '\(k)' must be a Tensor, got \(c.typeName(-1))") }
        sd.set(k, t)
    }
    return sd
}

/// Module trees built from Lua stay at most this deep, so printing, forward and summaries (which
/// recurse in Swift) cannot overflow the stack whatever a script nests.
let maxModuleDepth = 256

/// Depth of a module tree (1 for a leaf); stops counting past the limit.
func moduleDepth(_ m: Module, limit: Int = maxModuleDepth + 1) -> Int {
    guard limit > 0 else { return 1 }
    return 1 + (m.children.map { moduleDepth($0.module, limit: limit - 1) }.max() ?? 0)
}

/// Whether `target` occurs in the tree of `root` (bounded by the depth limit).
func subtree(_ root: Module, contains target: Module, limit: Int = maxModuleDepth + 1) -> Bool {
    if root === target { return true }
    guard limit > 0 else { return false }
    return root.children.contains { subtree($0.module, contains: target, limit: limit - 1) }
}

/// Refuses to nest `child` under `parent` if that makes a cycle or the tree too deep.
func checkNesting(_ child: Module, under parent: Module?, _ fn: String) throws {
    if let parent, subtree(child, contains: parent) {
        throw LuaError("\(fn): a module cannot contain itself (the new child holds its parent)")
    }
    try checkNesting(child, fn)
}

/// Refuses to nest `child` under a parent if the tree would get too deep.
func checkNesting(_ child: Module, _ fn: String) throws {
    guard moduleDepth(child) < maxModuleDepth else {
        throw LuaError("\(fn): module trees are limited to \(maxModuleDepth) levels of nesting")
    }
}

enum NNBindings {
    nonisolated(unsafe) static var typeID: Int32 = 0
    nonisolated(unsafe) static var type: LuaType!

    static func register() {
        let M = LuaTypes.register(Module.self, name: "Module",
            doc: "A layer or model (nn.*, models.*). Call it on a tensor: y = m(x). Children and parameters by name: m.classifier, m.weight; Sequential layers by 0-based index: m[0].")
        typeID = M.type.id
        type = M.type
        M.tostring { $0.description }

        M.meta("__call") { c in
            let m = try c.module(1)
            guard let x = c.toObject(2, Tensor.self) else { throw LuaError("bad argument #1 to '\(m.typeName) call' (Tensor expected, got \(c.typeName(2)))") }
            return c.push(try m(x))
        }
        M.meta("__len") { c in
            let m = try c.module(1)
            c.push(m.children.count); return 1
        }
        M.dynamicField { c, m, key in
            if let child = m.child(key) { return c.push(child) }
            if let p = m.localParameters.first(where: { $0.name == key }) { return c.push(p.tensor) }
            if let b = m.localBuffers.first(where: { $0.name == key }) { return c.push(b.tensor) }
            if let lm = m as? LuaModule, try lm.pushField(c.L, key) { return 1 }
            return nil
        }
        M.dynamicSetter { c, m, key in
            guard let lm = m as? LuaModule else { return false }
            try lm.assign(c, key)
            return true
        }
        M.index { c, m in
            var i: lua_Integer = 0
            guard lua_type(c.L, 2) == LUA_TNUMBER, sskd_isinteger_value(c.L, 2, &i) != 0 else {
                throw LuaError("bad index to a Module (0-based integer or a child's name expected, got \(c.typeName(2)))")
            }
            let n = m.children.count
            let j = i < 0 ? Int(i) + n : Int(i)
            guard j >= 0 && j < n else { throw LuaError("index \(i) is out of range for a \(m.typeName) with \(n) children") }
            return c.push(m.children[j].module)
        }

        M.field("training", "true in training mode (see m:train(), m:eval())") { c, m in c.push(m.training); return 1 }
        M.field("type", "the layer's class name (\"Conv2d\", \"EfficientNet\", ...)") { c, m in c.pushString(m.typeName); return 1 }
        M.field("constructor", "how the model was built by name (\"model_variants.small_cnn{classes = 2}\"), or nil; fit/distill record it in the run's model.json") { c, m in
            if let k = m.constructor { c.pushString(k.description) } else { c.pushNil() }
            return 1
        }

        M.method("forward", "m:forward(x) -> Tensor", "runs the module (same as m(x))") { c, m in c.push(try m(try c.tensor(2))) }
        M.method("parameters", "m:parameters() -> {Tensor...}", "all parameters (recursively) as a Lua array") { c, m in
            let ps = m.parameters()
            lua_createtable(c.L, Int32(ps.count), 0)
            for (k, p) in ps.enumerated() { c.push(p); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
            return 1
        }
        M.method("named_parameters", "m:named_parameters() -> {{name, Tensor}...}", "parameters with their dotted names, in order") { c, m in
            pushPairs(c, m.namedParameters().map { ($0.name, $0.tensor) }) { c.push($0) }
            return 1
        }
        M.method("named_buffers", "m:named_buffers() -> {{name, Tensor}...}", "buffers (running statistics) with their dotted names") { c, m in
            pushPairs(c, m.namedBuffers().map { ($0.name, $0.tensor) }) { c.push($0) }
            return 1
        }
        M.method("children", "m:children() -> {{name, Module}...}", "direct children with their names, in order") { c, m in
            pushPairs(c, m.children.map { ($0.name, $0.module) }) { c.push($0) }
            return 1
        }
        M.method("named_modules", "m:named_modules() -> {{name, Module}...}", "every module of the tree (the root is named \"\")") { c, m in
            pushPairs(c, m.namedModules().map { ($0.name, $0.module) }) { c.push($0) }
            return 1
        }
        M.method("get", "m:get(path) -> Module or nil", "a submodule by dotted path (\"features.0.1\")") { c, m in
            if let s = m.submodule(try c.string(2)) { return c.push(s) }
            c.pushNil(); return 1
        }
        M.method("set", "m:set(path, module)", "replaces a submodule (e.g. a classifier head)") { c, m in
            let child = try c.module(3)
            try checkNesting(child, under: m, c.name)
            try m.setSubmodule(try c.string(2), child); return 0
        }
        M.method("num_parameters", "m:num_parameters([trainable_only]) -> integer", "number of parameter elements") { c, m in
            c.push(try c.optBool(2) == true ? m.trainableParameterCount : m.parameterCount); return 1
        }
        M.method("train", "m:train([mode=true]) -> m", "training mode (dropout, batch statistics)") { c, m in
            m.train(try c.optBool(2) ?? true); c.pushValue(1); return 1
        }
        M.method("eval", "m:eval() -> m", "evaluation mode") { c, m in m.eval(); c.pushValue(1); return 1 }
        M.method("zero_grad", "m:zero_grad()", "clears every parameter's gradient") { _, m in m.zeroGrad(); return 0 }
        M.method("requires_grad_", "m:requires_grad_([flag=true]) -> m", "sets requires_grad on every parameter (freeze with false)") { c, m in
            m.requiresGrad(try c.optBool(2) ?? true); c.pushValue(1); return 1
        }
        M.method("summary", "m:summary{C, H, W} -> string", "per-layer output shapes, parameters and multiply-adds for one input of that size") { c, m in
            c.pushString(try m.summary(input: try c.ints(from: 2)).description); return 1
        }
        M.method("state_dict", "m:state_dict() -> {name = Tensor}", "parameters and buffers by dotted name") { c, m in
            let sd = m.stateDict()
            lua_createtable(c.L, 0, Int32(sd.count))
            for (k, t) in sd { c.push(t); c.setRawField(-2, k) }
            return 1
        }
        M.method("load_state_dict", "m:load_state_dict(sd [, {strict=true}]) -> report", "copies tensors from a table name -> Tensor") { c, m in
            let sd = try stateDictFromLua(c, 2)
            let o = try c.options(3)
            let strict = try o.bool("strict", default: true)
            try o.finish()
            c.pushString(try m.loadStateDict(sd, strict: strict).description); return 1
        }
        M.method("save", "m:save(path)", "writes the state dict as safetensors") { c, m in try m.save(try c.string(2)); return 0 }
        M.method("export_onnx", "m:export_onnx(path, {input = {1, 3, 96, 96} [, dynamic_batch = true, opset = 17, fold_batchnorm = false]}) -> summary",
                 "writes the eval-mode model as ONNX, traced on a random input of that shape; summary: {path, bytes, nodes, initializers, ops = {Conv = n, ...}}") { c, m in
            let path = try c.string(2)
            let o = try c.options(3)
            guard let shape = try o.ints("input") else { throw LuaError("export_onnx: option 'input' (the input shape, e.g. {1, 3, 96, 96}) is required") }
            let options = ONNXExport.Options(inputShape: shape, dynamicBatch: try o.bool("dynamic_batch", default: true),
                                             opset: try o.int("opset", default: 17),
                                             inputName: try o.string("input_name") ?? "input", outputName: try o.string("output_name") ?? "logits",
                                             foldBatchNorm: try o.bool("fold_batchnorm", default: false))
            try o.finish()
            let s = try ONNXExport.export(m, to: path, options: options)
            lua_createtable(c.L, 0, 6)
            c.pushString(s.path); c.setRawField(-2, "path")
            c.push(s.bytes); c.setRawField(-2, "bytes")
            c.push(s.nodes); c.setRawField(-2, "nodes")
            c.push(s.initializers); c.setRawField(-2, "initializers")
            c.push(ints: s.outputShape); c.setRawField(-2, "output_shape")
            lua_createtable(c.L, 0, Int32(s.opCounts.count))
            for (k, n) in s.opCounts { c.push(n); c.setRawField(-2, k) }
            c.setRawField(-2, "ops")
            return 1
        }
        M.method("fingerprint", "m:fingerprint() -> string", "SHA-256 (hex) of the state dict: names, shapes and values (the same weights give the same string)") { c, m in
            c.pushString(Fingerprint.stateDict(m.stateDict())); return 1
        }
        M.method("load", "m:load(path [, {strict=true}]) -> report",
                 "loads safetensors weights: a state dict (m:save) or a run's checkpoint (best/last.safetensors, its model part); strict=false skips missing/mismatched entries") { c, m in
            let path = try c.string(2)
            let o = try c.options(3)
            let strict = try o.bool("strict", default: true)
            try o.finish()
            do { c.pushString(try m.loadStateDict(try Checkpoint.weights(path), strict: strict).description) } catch let e as StateDictError {
                throw LuaError("\(path): \(e)")
            }
            return 1
        }
        M.method("add", "m:add(module) -> m", "appends a layer to a Sequential") { c, m in
            guard let s = m as? Sequential else { throw LuaError("Module:add: only a Sequential can grow, this is a \(m.typeName)") }
            let child = try c.module(2)
            try checkNesting(child, under: s, c.name)
            s.append(child); c.pushValue(1); return 1
        }

        registerLayers()
        registerModels()
    }

    static func registerLayers() {
        let nn = LuaLibraries.named("nn", doc: "Layers (torch.nn names); options by table, positional arguments as in PyTorch.")
        func simple(_ name: String, _ summary: String, _ make: @escaping () -> Module) {
            nn.function(name, "nn.\(name)()", summary) { c in c.push(make()) }
        }
        simple("ReLU", "max(x, 0)") { ReLU() }
        simple("ReLU6", "min(max(x, 0), 6)") { ReLU6() }
        simple("SiLU", "x * sigmoid(x)") { SiLU() }
        simple("Sigmoid", "1 / (1 + e^-x)") { Sigmoid() }
        simple("Hardswish", "x * relu6(x + 3) / 6") { Hardswish() }
        simple("Hardsigmoid", "relu6(x + 3) / 6") { Hardsigmoid() }
        simple("Identity", "returns its input") { Identity() }
        nn.function("Flatten", "nn.Flatten([start_dim=1 [, end_dim=-1]])", "flattens dims start..end") { c in
            c.push(Flatten(startDim: try c.int(1, default: 1), endDim: try c.int(2, default: -1)))
        }
        nn.function("Linear", "nn.Linear(in_features, out_features [, {bias=true}])", "y = x W^T + b") { c in
            let i = try c.int(1), o = try c.int(2)
            let opts = try c.options(3)
            let bias = try opts.bool("bias", default: true)
            try opts.finish()
            return c.push(try Linear(i, o, bias: bias))
        }
        nn.function("Conv2d", "nn.Conv2d(in, out, kernel_size [, {stride=1, padding=0, dilation=1, groups=1, bias=true}])", "2-D convolution") { c in
            let i = try c.int(1), o = try c.int(2), k = try c.intOrInts(3, what: "kernel_size")
            let opts = try c.options(4)
            let stride = try opts.ints("stride") ?? [1], padding = try opts.ints("padding") ?? [0], dilation = try opts.ints("dilation") ?? [1]
            let groups = try opts.int("groups", default: 1), bias = try opts.bool("bias", default: true)
            try opts.finish()
            return c.push(try Conv2d(i, o, kernelSize: k, stride: stride, padding: padding, dilation: dilation, groups: groups, bias: bias))
        }
        nn.function("BatchNorm2d", "nn.BatchNorm2d(num_features [, {eps=1e-5, momentum=0.1}])", "batch normalisation over channels") { c in
            let n = try c.int(1)
            let opts = try c.options(2)
            let eps = try opts.number("eps") ?? 1e-5, momentum = try opts.number("momentum") ?? 0.1
            try opts.finish()
            return c.push(try BatchNorm2d(n, settings: .init(eps: eps, momentum: momentum)))
        }
        nn.function("Dropout", "nn.Dropout([p=0.5])", "inverted dropout in training mode") { c in c.push(try Dropout(p: try c.optNumber(1) ?? 0.5)) }
        nn.function("StochasticDepth", "nn.StochasticDepth(p [, {mode='row'}])", "drops residual branches in training mode") { c in
            let p = try c.number(1)
            let opts = try c.options(2)
            let mode = try opts.string("mode") ?? "row"
            try opts.finish()
            guard let m = StochasticDepthMode(rawValue: mode) else { throw LuaError("bad option 'mode' to 'nn.StochasticDepth' (expected 'row' or 'batch', got '\(mode)')") }
            return c.push(try StochasticDepth(p: p, mode: m))
        }
        nn.function("MaxPool2d", "nn.MaxPool2d(kernel_size [, {stride=kernel_size, padding=0, dilation=1, ceil_mode=false}])", "2-D max pooling") { c in
            let k = try c.intOrInts(1, what: "kernel_size")
            let o = try c.options(2)
            let m = MaxPool2d(kernelSize: k, stride: try o.ints("stride"), padding: try o.ints("padding") ?? [0], dilation: try o.ints("dilation") ?? [1],
                              ceilMode: try o.bool("ceil_mode", default: false))
            try o.finish()
            return c.push(m)
        }
        nn.function("AvgPool2d", "nn.AvgPool2d(kernel_size [, {stride=kernel_size, padding=0, ceil_mode=false, count_include_pad=true}])", "2-D average pooling") { c in
            let k = try c.intOrInts(1, what: "kernel_size")
            let o = try c.options(2)
            let m = AvgPool2d(kernelSize: k, stride: try o.ints("stride"), padding: try o.ints("padding") ?? [0],
                              ceilMode: try o.bool("ceil_mode", default: false), countIncludePad: try o.bool("count_include_pad", default: true))
            try o.finish()
            return c.push(m)
        }
        nn.function("AdaptiveAvgPool2d", "nn.AdaptiveAvgPool2d(output_size)", "average pooling to a fixed output size") { c in
            c.push(AdaptiveAvgPool2d(outputSize: try c.intOrInts(1, what: "output_size")))
        }
        nn.function("Sequential", "nn.Sequential(m1, m2, ...) or nn.Sequential{m1, m2, ...}", "runs modules in order; index layers from 0") { c in
            var layers: [Module] = []
            if lua_type(c.L, 1) == LUA_TTABLE && c.toObject(1, Module.self) == nil {
                let n = Int(lua_rawlen(c.L, 1))
                for k in 0..<n {
                    lua_rawgeti(c.L, 1, lua_Integer(k + 1))
                    defer { c.pop() }
                    guard let m = c.toObject(-1, Module.self) else { throw c.argError(1, message: "entry \(k + 1) must be a Module, got \(c.typeName(-1))") }
                    layers.append(m)
                }
            } else {
                for i in 1...max(c.top, 1) where i <= c.top { layers.append(try c.module(i)) }
            }
            for l in layers { try checkNesting(l, c.name) }
            return c.push(Sequential(layers))
        }
    }

    static func registerModels() {
        let models = LuaLibraries.named("models", doc: "torchvision architectures (randomly initialised unless weights= is given).")
        /// Loads `weights` (a safetensors path) if given, and records the constructor call
        /// (`models.<name>{options}`; weights come separately) in `m.constructor`.
        func finish(_ m: Module, _ o: Options, _ c: LuaCall) throws -> Module {
            if let w = try o.string("weights") { try m.load(w, strict: try o.bool("strict", default: true)) } else { _ = try o.bool("strict") }
            try o.finish()
            m.constructor = c.constructor(c.name, options: 1, skipping: ["weights", "strict"])
            return m
        }
        models.function("mobilenet_v2", "models.mobilenet_v2{classes=1000, width_mult=1.0, dropout=0.2, in_channels=3, weights=nil, strict=true}",
                        "MobileNetV2 (torchvision); weights= loads a safetensors file") { c in
            let o = try c.options(1)
            let cfg = MobileNetV2.Config(classes: try o.int("classes", default: 1000), widthMult: try o.number("width_mult") ?? 1.0,
                                         dropout: try o.number("dropout") ?? 0.2, inputChannels: try o.int("in_channels", default: 3))
            return c.push(try finish(try MobileNetV2(cfg), o, c))
        }
        for n in 0...7 {
            models.function("efficientnet_b\(n)", "models.efficientnet_b\(n){classes=1000, in_channels=3, dropout=, stochastic_depth_prob=0.2, weights=nil, strict=true}",
                            "EfficientNet-B\(n) (torchvision's compound scaling)") { c in
                let o = try c.options(1)
                var cfg = try EfficientNet.Config.variant(n, classes: try o.int("classes", default: 1000))
                cfg.inputChannels = try o.int("in_channels", default: 3)
                if let d = try o.number("dropout") { cfg.dropout = d }
                if let s = try o.number("stochastic_depth_prob") { cfg.stochasticDepthProb = s }
                return c.push(try finish(try EfficientNet(cfg), o, c))
            }
        }
        models.function("efficientnet", "models.efficientnet{width_mult=1.0, depth_mult=1.0, classes=1000, dropout=0.2, stochastic_depth_prob=0.2, in_channels=3, weights=nil}",
                        "an EfficientNet with any width/depth multipliers (B0 = 1.0, 1.0)") { c in
            let o = try c.options(1)
            let cfg = EfficientNet.Config(classes: try o.int("classes", default: 1000), widthMult: try o.number("width_mult") ?? 1.0,
                                          depthMult: try o.number("depth_mult") ?? 1.0, dropout: try o.number("dropout") ?? 0.2,
                                          stochasticDepthProb: try o.number("stochastic_depth_prob") ?? 0.2, inputChannels: try o.int("in_channels", default: 3))
            return c.push(try finish(try EfficientNet(cfg), o, c))
        }
        models.function("names", "models.names() -> {string...}", "the architectures models.make knows") { c in
            lua_createtable(c.L, Int32(Models.names.count), 0)
            for (k, n) in Models.names.enumerated() { c.pushString(n); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
            return 1
        }
    }
}
