// From a traced forward to an ONNX graph: each tensor becomes a value, made by the node(s) of the
// layer or op that produced it. Values are emitted depth first from the output, so nodes come out
// in topological order and only what the output depends on is exported.
//
// Layer -> ONNX (eval mode):
//   Conv2d              Conv (group = groups, so depthwise and grouped convs too)
//   BatchNorm2d         BatchNormalization, or folded into the Conv before it (`foldBatchNorm`)
//   Linear              Gemm (transB) on [N, in]; MatMul + Add on more dims
//   ReLU / ReLU6        Relu / Clip(0, 6)
//   SiLU                Sigmoid + Mul
//   Sigmoid, Hardswish  Sigmoid, HardSwish;  Hardsigmoid  HardSigmoid(alpha 1/6, beta 1/2)
//   MaxPool2d, AvgPool2d          MaxPool, AveragePool
//   AdaptiveAvgPool2d   GlobalAveragePool (1x1) or AveragePool (sizes that divide)
//   Flatten             Flatten (start 1) or Reshape
//   Dropout, StochasticDepth, Identity: nothing (they return their input in eval)
// Ops between layers (residual adds, the SE gate's multiply, what a Lua forward computes):
//   add sub mul div (tensor or scalar), rsub rdiv, neg exp log log1p sqrt square pow abs, sigmoid
//   tanh relu relu6 silu hardswish hardsigmoid clamp, maximum minimum, reshape/view/flatten,
//   sum max min (over axes), softmax log_softmax, permute, cat, matmul, expand,
//   adaptive_avg_pool2d.

import Foundation
import SSKDNN
import SSKDTensor

struct GraphBuilder {
    let trace: ForwardTrace
    let input: Tensor
    let options: ONNXExport.Options
    /// State-dict keys of parameters and buffers, for initializer names.
    private let tensorNames: [ObjectIdentifier: String]
    /// Dotted module paths ("features.1.conv.0"), for node names and errors.
    private let modulePaths: [ObjectIdentifier: String]
    private let rootType: String
    /// How many traced consumers each tensor has (decides whether a conv's output may be folded away).
    private var uses: [ObjectIdentifier: Int] = [:]

    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var valueOf: [ObjectIdentifier: String] = [:]
    private var taken: Set<String> = []
    private var constants: [String: String] = [:]

    init(model: Module, trace: ForwardTrace, input: Tensor, options: ONNXExport.Options) {
        self.trace = trace
        self.input = input
        self.options = options
        var names: [ObjectIdentifier: String] = [:]
        for (n, t) in model.namedParameters() + model.namedBuffers() where names[ObjectIdentifier(t)] == nil { names[ObjectIdentifier(t)] = n }
        tensorNames = names
        var paths: [ObjectIdentifier: String] = [:]
        for (p, m) in model.namedModules() where paths[ObjectIdentifier(m)] == nil { paths[ObjectIdentifier(m)] = p }
        modulePaths = paths
        rootType = model.typeName
        for call in trace.layerByOutput.values { uses[ObjectIdentifier(call.input), default: 0] += 1 }
        for op in trace.opByOutput.values where trace.layerByOutput[ObjectIdentifier(op.output)] == nil {
            for t in op.inputs { uses[ObjectIdentifier(t), default: 0] += 1 }
        }
        taken = [options.inputName, options.outputName]
    }

    private var batch: Int { input.shape[0] }

    // MARK: The graph

    mutating func graph(outputValue: String, outputShape: [Int]) throws -> Onnx_GraphProto {
        var g = Onnx_GraphProto()
        g.name = rootType
        // The output gets its public name: renamed in place when the last node made it.
        if let i = nodes.lastIndex(where: { $0.output.contains(outputValue) }), outputValue != options.inputName,
           nodes.allSatisfy({ !$0.input.contains(outputValue) }) {
            nodes[i].output = nodes[i].output.map { $0 == outputValue ? options.outputName : $0 }
        } else {
            addNode("Identity", [outputValue], options.outputName, name: "output")
        }
        g.node = nodes
        g.initializer = initializers
        g.input = [valueInfo(options.inputName, input.shape)]
        g.output = [valueInfo(options.outputName, outputShape)]
        return g
    }

    private func valueInfo(_ name: String, _ shape: [Int]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1  // FLOAT
        var s = Onnx_TensorShapeProto()
        s.dim = shape.enumerated().map { i, n in
            var d = Onnx_TensorShapeProto.Dimension()
            if i == 0 && options.dynamicBatch && n == batch { d.dimParam = "batch" } else { d.dimValue = Int64(n) }
            return d
        }
        t.shape = s
        v.type.tensorType = t
        return v
    }

    // MARK: Values

    /// The ONNX value holding `t`, emitting whatever computes it first.
    mutating func value(of t: Tensor) throws -> String {
        if t === input { return options.inputName }
        let id = ObjectIdentifier(t)
        if let v = valueOf[id] { return v }
        let v: String
        if let call = trace.layerByOutput[id] {
            v = try emitLayer(call)
        } else if let op = trace.opByOutput[id] {
            v = try emitOp(op)
        } else {
            // Neither the input nor computed from it: a parameter, buffer or constant.
            v = addInitializer(t, name: tensorNames[id] ?? "constant")
        }
        valueOf[id] = v
        return v
    }

    private mutating func unique(_ base: String) -> String {
        var name = base.isEmpty ? "value" : base
        var k = 1
        while taken.contains(name) { k += 1; name = "\(base)_\(k)" }
        taken.insert(name)
        return name
    }

    @discardableResult
    private mutating func addNode(_ opType: String, _ inputs: [String], _ output: String, name: String,
                                  _ attributes: [Onnx_AttributeProto] = []) -> String {
        var n = Onnx_NodeProto()
        n.opType = opType
        n.input = inputs
        n.output = [output]
        n.name = unique(name)
        n.attribute = attributes
        nodes.append(n)
        return output
    }

    /// Adds an initializer (ONNX data type 1 FLOAT or 7 INT64) under a unique name made from `name`.
    private mutating func addInitializer(_ name: String, shape: [Int], dataType: Int32, rawData: Data) -> String {
        let n = unique(name)
        var p = Onnx_TensorProto()
        p.name = n
        p.dims = shape.map { Int64($0) }
        p.dataType = dataType
        p.rawData = rawData
        initializers.append(p)
        return n
    }

    // Hosts are little-endian (x86-64, arm64): Float32 and Int64 memory is ONNX's raw_data layout.
    private mutating func addInitializer(_ t: Tensor, name: String) -> String {
        addInitializer(name, shape: t.shape, dataType: 1, rawData: Data(buffer: UnsafeBufferPointer(start: t.data, count: t.count)))
    }

    private mutating func addInitializer(floats: [Float], shape: [Int], name: String) -> String {
        addInitializer(name, shape: shape, dataType: 1, rawData: floats.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// A shared scalar float constant (Clip bounds, scalar operands).
    private mutating func scalar(_ x: Float) -> String {
        let key = "f\(x.bitPattern)"
        if let n = constants[key] { return n }
        let n = addInitializer(floats: [x], shape: [], name: "const_\(x)")
        constants[key] = n
        return n
    }

    /// A shared 1-D int64 constant (shapes, axes).
    private mutating func int64s(_ v: [Int], name: String) -> String {
        let key = "i\(v)"
        if let n = constants[key] { return n }
        let n = addInitializer(name, shape: [v.count], dataType: 7, rawData: v.map { Int64($0) }.withUnsafeBufferPointer { Data(buffer: $0) })
        constants[key] = n
        return n
    }

    // MARK: Layers

    private func path(_ m: Module) -> String { modulePaths[ObjectIdentifier(m)] ?? m.typeName }

    private mutating func emitLayer(_ call: ForwardTrace.LayerCall) throws -> String {
        let m = call.module
        let p = path(m)
        // BatchNorm2d right after a Conv2d whose output nothing else reads: one Conv with folded weights.
        if options.foldBatchNorm, let bn = m as? BatchNorm2d, let convCall = trace.layerByOutput[ObjectIdentifier(call.input)],
           let conv = convCall.module as? Conv2d, conv.outChannels == bn.numFeatures, uses[ObjectIdentifier(call.input)] == 1 {
            return try emitConv(conv, input: convCall.input, folding: bn, name: p)
        }
        let x = try value(of: call.input)
        let out = unique(p)
        switch m {
        case let conv as Conv2d:
            return try emitConv(conv, input: call.input, folding: nil, name: p, output: out)
        case let bn as BatchNorm2d:
            var ins = [x]
            for t in [bn.weight, bn.bias, bn.runningMean, bn.runningVar] { ins.append(try value(of: t)) }
            return addNode("BatchNormalization", ins, out, name: p, [.float("epsilon", Float(bn.settings.eps))])
        case let l as Linear:
            return try emitLinear(l, x, inputShape: call.input.shape, out: out, name: p)
        case is ReLU:
            return addNode("Relu", [x], out, name: p)
        case is ReLU6:
            return addNode("Clip", [x, scalar(0), scalar(6)], out, name: p)
        case is SiLU:
            return emitSiLU(x, out: out, name: p)
        case is Sigmoid:
            return addNode("Sigmoid", [x], out, name: p)
        case is Hardswish:
            return addNode("HardSwish", [x], out, name: p)
        case is Hardsigmoid:
            return addNode("HardSigmoid", [x], out, name: p, [.float("alpha", 1.0 / 6), .float("beta", 0.5)])
        case let pool as MaxPool2d:
            let k = pair(pool.kernelSize), s = pair(pool.stride), pad = pair(pool.padding), d = pair(pool.dilation)
            return addNode("MaxPool", [x], out, name: p, [.ints("kernel_shape", k), .ints("strides", s), .ints("pads", pad + pad),
                                                          .ints("dilations", d), .int("ceil_mode", pool.ceilMode ? 1 : 0)])
        case let pool as AvgPool2d:
            let k = pair(pool.kernelSize), s = pair(pool.stride), pad = pair(pool.padding)
            return addNode("AveragePool", [x], out, name: p, [.ints("kernel_shape", k), .ints("strides", s), .ints("pads", pad + pad),
                                                              .int("ceil_mode", pool.ceilMode ? 1 : 0),
                                                              .int("count_include_pad", pool.countIncludePad ? 1 : 0)])
        case is AdaptiveAvgPool2d:
            return try emitAdaptiveAvgPool(x, from: call.input.shape, to: call.output.shape, out: out, name: p, what: "\(m.typeName) '\(p)'")
        case let f as Flatten:
            let start = f.startDim < 0 ? f.startDim + call.input.dim : f.startDim
            let end = f.endDim < 0 ? f.endDim + call.input.dim : f.endDim
            if start == 1 && end == call.input.dim - 1 { return addNode("Flatten", [x], out, name: p, [.int("axis", 1)]) }
            return emitReshape(x, from: call.input.shape, to: call.output.shape, out: out, name: p)
        default:
            throw unsupported("layer \(m.typeName)", at: m)
        }
    }

    private func pair(_ v: [Int]) -> [Int] { v.count == 1 ? [v[0], v[0]] : v }

    /// Conv, with a following BatchNorm2d folded in when given:
    ///   w' = w * gamma / sqrt(var + eps) (per output channel),  b' = (b - mean) * gamma / sqrt(var + eps) + beta.
    private mutating func emitConv(_ conv: Conv2d, input: Tensor, folding bn: BatchNorm2d?, name p: String, output: String? = nil) throws -> String {
        let x = try value(of: input)
        let out = output ?? unique(p)
        var ins = [x]
        if let bn {
            let cout = conv.outChannels, per = conv.weight.count / cout
            var w = [Float](repeating: 0, count: conv.weight.count), b = [Float](repeating: 0, count: cout)
            for c in 0..<cout {
                let inv = bn.weight.data[c] / (bn.runningVar.data[c] + Float(bn.settings.eps)).squareRoot()
                for i in 0..<per { w[c * per + i] = conv.weight.data[c * per + i] * inv }
                b[c] = ((conv.bias?.data[c] ?? 0) - bn.runningMean.data[c]) * inv + bn.bias.data[c]
            }
            let cp = path(conv)
            ins.append(addInitializer(floats: w, shape: conv.weight.shape, name: "\(cp).weight+\(p)"))
            ins.append(addInitializer(floats: b, shape: [cout], name: "\(cp).bias+\(p)"))
        } else {
            ins.append(try value(of: conv.weight))
            if let b = conv.bias { ins.append(try value(of: b)) }
        }
        let pad = pair(conv.padding)
        return addNode("Conv", ins, out, name: bn == nil ? p : path(conv),
                       [.ints("kernel_shape", pair(conv.kernelSize)), .ints("strides", pair(conv.stride)), .ints("pads", pad + pad),
                        .ints("dilations", pair(conv.dilation)), .int("group", conv.groups)])
    }

    private mutating func emitLinear(_ l: Linear, _ x: String, inputShape: [Int], out: String, name p: String) throws -> String {
        if inputShape.count == 2 {
            var ins = [x, try value(of: l.weight)]
            if let b = l.bias { ins.append(try value(of: b)) }
            return addNode("Gemm", ins, out, name: p, [.int("transB", 1)])
        }
        // MatMul wants [in, out]: a transposed copy of the weight.
        let o = l.outFeatures, i = l.inFeatures
        var wt = [Float](repeating: 0, count: o * i)
        for r in 0..<o { for c in 0..<i { wt[c * o + r] = l.weight.data[r * i + c] } }
        let wtName = addInitializer(floats: wt, shape: [i, o], name: "\(p).weight_t")
        guard let b = l.bias else { return addNode("MatMul", [x, wtName], out, name: p) }
        let mm = addNode("MatMul", [x, wtName], unique("\(p)/matmul"), name: "\(p)/MatMul")
        return addNode("Add", [mm, try value(of: b)], out, name: p)
    }

    private mutating func emitSiLU(_ x: String, out: String, name p: String) -> String {
        let s = addNode("Sigmoid", [x], unique("\(p)/sigmoid"), name: "\(p)/Sigmoid")
        return addNode("Mul", [x, s], out, name: p)
    }

    private mutating func emitAdaptiveAvgPool(_ x: String, from inShape: [Int], to outShape: [Int], out: String, name p: String,
                                              what: String) throws -> String {
        let h = inShape[inShape.count - 2], w = inShape[inShape.count - 1]
        let oh = outShape[outShape.count - 2], ow = outShape[outShape.count - 1]
        if oh == 1 && ow == 1 { return addNode("GlobalAveragePool", [x], out, name: p) }
        guard h % oh == 0, w % ow == 0 else {
            throw TensorError("export_onnx", "\(what): adaptive average pooling from \(h)x\(w) to \(oh)x\(ow) has unequal windows, which no ONNX op computes; use an input size divisible by the output size")
        }
        let k = [h / oh, w / ow]
        return addNode("AveragePool", [x], out, name: p, [.ints("kernel_shape", k), .ints("strides", k)])
    }

    /// Reshape to `to`; with a dynamic batch, a kept batch dim is written as 0 ("copy from input").
    private mutating func emitReshape(_ x: String, from: [Int], to: [Int], out: String, name p: String) -> String {
        var shape = to
        if options.dynamicBatch, !from.isEmpty, !to.isEmpty, from[0] == batch, to[0] == batch { shape[0] = 0 }
        return addNode("Reshape", [x, int64s(shape, name: "shape_\(shape.map(String.init).joined(separator: "x"))")], out, name: p)
    }

    // MARK: Ops

    private mutating func emitOp(_ op: ForwardTrace.OpCall) throws -> String {
        let where_ = op.module.map { path($0) } ?? ""
        let base = where_.isEmpty ? op.name : "\(where_)/\(op.name)"
        let xs = try op.inputs.map { try value(of: $0) }
        let out = unique(base)
        func float(_ key: String) throws -> Float {
            guard case .float(let v)? = op.attributes[key] else { throw unsupported("op \(op.name) without its '\(key)' setting", at: op.module) }
            return v
        }
        func axes() throws -> (axes: [Int], keepdim: Bool) {
            guard case .ints(let a)? = op.attributes["axes"], case .bool(let k)? = op.attributes["keepdim"] else {
                throw unsupported("op \(op.name) without its axes", at: op.module)
            }
            return (a.isEmpty ? Array(0..<op.inputs[0].dim) : a, k)
        }
        let unary = Self.unaryOps, binary = Self.binaryOps
        switch op.name {
        case let n where xs.count == 2 && binary[n] != nil:
            return addNode(binary[n]!, xs, out, name: base)
        case let n where xs.count == 1 && ["add", "mul", "div"].contains(n):
            return addNode(binary[op.name]!, [xs[0], scalar(try float("other"))], out, name: base)
        case "rsub" where xs.count == 1:
            return addNode("Sub", [scalar(try float("other")), xs[0]], out, name: base)
        case "rdiv" where xs.count == 1:
            return addNode("Div", [scalar(try float("other")), xs[0]], out, name: base)
        case let n where xs.count == 1 && unary[n] != nil:
            return addNode(unary[n]!, xs, out, name: base)
        case "square":
            return addNode("Mul", [xs[0], xs[0]], out, name: base)
        case "pow" where xs.count == 1:
            let e = try float("exponent")
            if e == 2 { return addNode("Mul", [xs[0], xs[0]], out, name: base) }
            if e == 0.5 { return addNode("Sqrt", xs, out, name: base) }
            return addNode("Pow", [xs[0], scalar(e)], out, name: base)
        case "log1p":
            let s = addNode("Add", [xs[0], scalar(1)], unique("\(base)/add"), name: "\(base)/Add")
            return addNode("Log", [s], out, name: base)
        case "relu6":
            return addNode("Clip", [xs[0], scalar(0), scalar(6)], out, name: base)
        case "silu":
            return emitSiLU(xs[0], out: out, name: base)
        case "hardsigmoid":
            return addNode("HardSigmoid", xs, out, name: base, [.float("alpha", 1.0 / 6), .float("beta", 0.5)])
        case "clamp":
            return addNode("Clip", [xs[0], scalar(try float("min")), scalar(try float("max"))], out, name: base)
        case "reshape":
            return emitReshape(xs[0], from: op.inputs[0].shape, to: op.output.shape, out: out, name: base)
        case "expand":
            // Expand broadcasts: a 1 keeps the input's size, which carries a dynamic batch through.
            var shape = op.output.shape
            if options.dynamicBatch, op.inputs[0].dim == shape.count, op.inputs[0].shape.first == batch, shape.first == batch { shape[0] = 1 }
            return addNode("Expand", [xs[0], int64s(shape, name: "shape_\(shape.map(String.init).joined(separator: "x"))")], out, name: base)
        case "sum", "max", "min":
            let (a, keep) = try axes()
            let type = ["sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin"][op.name]!
            // ReduceSum takes axes as an input since opset 13, ReduceMax/Min since 18.
            if op.name == "sum" || options.opset >= 18 {
                return addNode(type, [xs[0], int64s(a, name: "axes_\(a.map(String.init).joined(separator: "_"))")], out, name: base,
                               [.int("keepdims", keep ? 1 : 0)])
            }
            return addNode(type, xs, out, name: base, [.ints("axes", a), .int("keepdims", keep ? 1 : 0)])
        case "softmax", "log_softmax":
            guard case .int(let d)? = op.attributes["dim"] else { throw unsupported("op \(op.name) without its dim", at: op.module) }
            return addNode(op.name == "softmax" ? "Softmax" : "LogSoftmax", xs, out, name: base, [.int("axis", d)])
        case "permute":
            guard case .ints(let perm)? = op.attributes["dims"] else { throw unsupported("op permute without its dims", at: op.module) }
            return addNode("Transpose", xs, out, name: base, [.ints("perm", perm)])
        case "cat":
            guard case .int(let d)? = op.attributes["dim"] else { throw unsupported("op cat without its dim", at: op.module) }
            return addNode("Concat", xs, out, name: base, [.int("axis", d)])
        case "adaptive_avg_pool2d":
            return try emitAdaptiveAvgPool(xs[0], from: op.inputs[0].shape, to: op.output.shape, out: out, name: base, what: "op adaptive_avg_pool2d")
        default:
            throw unsupported("op \(op.name)", at: op.module)
        }
    }

    /// Ops that map to one ONNX op of the same inputs.
    private static let unaryOps = ["neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "sigmoid": "Sigmoid",
                                   "tanh": "Tanh", "relu": "Relu", "hardswish": "HardSwish"]
    private static let binaryOps = ["add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max", "minimum": "Min",
                                    "matmul": "MatMul"]

    private func unsupported(_ what: String, at module: Module?) -> TensorError {
        let place: String
        if let m = module {
            let p = path(m)
            place = p.isEmpty ? "the forward of \(m.typeName)" : "'\(p)' (\(m.typeName))"
        } else {
            place = "the forward of \(rootType)"
        }
        return TensorError("export_onnx", "\(what) in \(place) has no ONNX mapping; build the module from supported layers (Conv2d, BatchNorm2d, Linear, activations, pooling, Flatten) and ops (see docs/lua-api.md, export_onnx)")
    }
}

extension Onnx_AttributeProto {
    static func int(_ name: String, _ v: Int) -> Self {
        var a = Self(); a.name = name; a.type = .int; a.i = Int64(v); return a
    }
    static func ints(_ name: String, _ v: [Int]) -> Self {
        var a = Self(); a.name = name; a.type = .ints; a.ints = v.map(Int64.init); return a
    }
    static func float(_ name: String, _ v: Float) -> Self {
        var a = Self(); a.name = name; a.type = .float; a.f = v; return a
    }
}
