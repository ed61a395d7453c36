// Convolution layers. Shapes: input [N, Cin, H, W], weight [Cout, Cin/groups, kH, kW], bias [Cout],
// output [N, Cout, Hout, Wout] with Hout = (H + 2*padH - dilH*(kH-1) - 1) / strideH + 1.

import SSKDTensor

/// 2-D convolution (`nn.Conv2d`, zero padding).
public final class Conv2d: Module {
    public override var isPerSampleInEval: Bool { true }
    public let inChannels: Int, outChannels: Int
    public let kernelSize: [Int], stride: [Int], padding: [Int], dilation: [Int]
    public let groups: Int
    public let weight: Tensor
    public let bias: Tensor?

    /// - Parameters: sizes are one value (square) or `[h, w]`. Initialised like PyTorch's default
    ///   (kaiming_uniform with a = sqrt(5)) unless `initialize` is false (weights stay zero: for
    ///   models that initialise their own way or load a checkpoint next).
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int] = [1], padding: [Int] = [0],
                dilation: [Int] = [1], groups: Int = 1, bias: Bool = true, initialize: Bool = true,
                generator: Generator = .default) throws {
        func pair(_ v: [Int], _ what: String, min: Int) throws -> [Int] {
            guard v.count == 1 || v.count == 2, v.allSatisfy({ $0 >= min && $0 <= Int(Int32.max) }) else {
                throw TensorError("Conv2d", "\(what) must be one or two integers in \(min)...\(Int32.max), got \(v)")
            }
            return v.count == 1 ? [v[0], v[0]] : v
        }
        guard inChannels > 0, outChannels > 0, groups > 0 else {
            throw TensorError("Conv2d", "channels and groups must be positive, got in \(inChannels), out \(outChannels), groups \(groups)")
        }
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw TensorError("Conv2d", "in_channels \(inChannels) and out_channels \(outChannels) must be divisible by groups \(groups)")
        }
        self.inChannels = inChannels; self.outChannels = outChannels; self.groups = groups
        self.kernelSize = try pair(kernelSize, "kernel_size", min: 1)
        self.stride = try pair(stride, "stride", min: 1)
        self.padding = try pair(padding, "padding", min: 0)
        self.dilation = try pair(dilation, "dilation", min: 1)
        do {
            self.weight = try Tensor.zeros([outChannels, inChannels / groups] + self.kernelSize)
            self.bias = bias ? try Tensor.zeros([outChannels]) : nil
        } catch {
            throw TensorError("Conv2d", "in_channels \(inChannels), out_channels \(outChannels), kernel_size \(self.kernelSize): \(error)")
        }
        super.init()
        registerParameter("weight", weight)
        if let b = self.bias { registerParameter("bias", b) }
        if initialize { Init.torchDefault(weight: weight, bias: self.bias, generator: generator) }
    }

    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true, initialize: Bool = true,
                            generator: Generator = .default) throws {
        try self.init(inChannels, outChannels, kernelSize: [kernelSize], stride: [stride], padding: [padding],
                      dilation: [dilation], groups: groups, bias: bias, initialize: initialize, generator: generator)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try conv2d(x, weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    /// Eval-mode `bn(conv(x))` as one convolution: the batch norm's affine map (running
    /// statistics) is folded into this layer's weight and bias,
    ///   scale = gamma / sqrt(running_var + eps),  W' = W * scale (per output channel),
    ///   b' = beta + (b - running_mean) * scale,
    /// which saves the norm's pass over the output and its buffer. Equal to the two layers up to
    /// float rounding. The folded copy is recomputed on every call (a pass over the weights,
    /// small next to the convolution), so it can never go stale. No autograd: callers use it
    /// only under `withNoGrad`.
    public func forwardFoldingBatchNorm(_ x: Tensor, _ bn: BatchNorm2d) throws -> Tensor {
        guard bn.numFeatures == outChannels else {
            throw TensorError("Conv2d", "cannot fold BatchNorm2d(\(bn.numFeatures)) into a conv with \(outChannels) output channels")
        }
        let o = outChannels, per = weight.count / o
        let w = try Tensor.empty(weight.shape), b = try Tensor.empty([o])
        let eps = Float(bn.settings.eps)
        let gamma = bn.weight.data, beta = bn.bias.data, mean = bn.runningMean.data, variance = bn.runningVar.data
        let src = weight.data, dst = w.data
        for c in 0..<o {
            let scale = gamma[c] / (variance[c] + eps).squareRoot()
            for k in 0..<per { dst[c * per + k] = src[c * per + k] * scale }
            b.data[c] = beta[c] + ((bias?.data[c] ?? 0) - mean[c]) * scale
        }
        return try conv2d(x, w, bias: b, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    public override var extraRepr: String {
        var s = "\(inChannels), \(outChannels), kernel_size=\(pyTuple(kernelSize)), stride=\(pyTuple(stride))"
        if padding != [0, 0] { s += ", padding=\(pyTuple(padding))" }
        if dilation != [1, 1] { s += ", dilation=\(pyTuple(dilation))" }
        if groups != 1 { s += ", groups=\(groups)" }
        if bias == nil { s += ", bias=False" }
        return s
    }
}

/// Conv2d -> BatchNorm2d -> activation, torchvision's `Conv2dNormActivation` (a Sequential whose
/// children are named 0, 1, 2). Padding defaults to `(kernel - 1) / 2 * dilation` ("same" for
/// odd kernels at stride 1); the conv has no bias because the norm follows.
public final class Conv2dNormActivation: Sequential {
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int = 3, stride: Int = 1, padding: Int? = nil,
                groups: Int = 1, dilation: Int = 1, norm: BatchNorm2d.Settings? = .init(),
                activation: (() -> Module)? = { ReLU(inplace: true) }, initialize: Bool = true, generator: Generator = .default) throws {
        let pad = padding ?? (kernelSize - 1) / 2 * dilation
        var layers: [Module] = [try Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: pad,
                                           dilation: dilation, groups: groups, bias: norm == nil, initialize: initialize, generator: generator)]
        if let norm { layers.append(try BatchNorm2d(outChannels, settings: norm)) }
        if let activation { layers.append(activation()) }
        super.init(layers)
    }
}
