// CNN kernels as differentiable functions over NCHW Float32 tensors, like `torch.nn.functional`.
// Each function validates its arguments, runs the plain buffer kernels of Kernels/ and records
// the matching backward kernel for autograd.

/// How stochastic depth drops residual branches (torchvision's `mode`).
public enum StochasticDepthMode: String, Sendable {
    /// One Bernoulli draw per sample.
    case row
    /// One draw for the whole batch.
    case batch
}

/// Runs `f` on a 4-D view of a 3-D (unbatched) input and returns the result without the batch dim.
private func unbatched(_ input: Tensor, _ f: (Tensor) throws -> Tensor) throws -> Tensor {
    try f(input.unsqueeze(0)).squeeze(0)
}

// MARK: - Convolution

/// 2-D convolution, like `F.conv2d`.
/// - input `[N, Cin, H, W]` (or unbatched `[Cin, H, W]`), weight `[Cout, Cin/groups, kH, kW]`, bias `[Cout]`.
/// - `stride`, `dilation`: 1 or 2 entries; `padding`: 1, 2 (`[ph, pw]`) or 4 entries
///   (`[top, bottom, left, right]`), zeros.
/// - `groups == Cin` (depthwise) runs direct SIMD kernels; other cases im2col + sgemm, and 1x1
///   stride-1 unpadded convolutions a plain GEMM per image.
public func conv2d(_ input: Tensor, _ weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0],
                   dilation: [Int] = [1], groups: Int = 1) throws -> Tensor {
    if input.dim == 3 {
        return try unbatched(input) { try conv2d($0, weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups) }
    }
    let g = try ConvGeometry(input: input.shape, weight: weight.shape, bias: bias?.shape, stride: stride, padding: padding,
                             dilation: dilation, groups: groups)
    let out = try Tensor([g.n, g.o, g.oh, g.ow], zeroed: false, op: "conv2d")
    if !g.isDepthwise && !g.isPointwise {
        // The im2col scratch, [CKK, OH*OW] per thread, can dwarf the output (a large kernel).
        let (scratch, overflow) = g.ckk.multipliedReportingOverflow(by: g.ohw)
        guard !overflow else { throw TensorError("conv2d", "weight \(fmt(weight.shape)) on input \(fmt(input.shape)) needs too large an im2col buffer") }
        try MemoryLimit.check(count: scratch, elementSize: MemoryLayout<Float>.stride * Runtime.availableThreads, op: "conv2d")
    } else if g.isDepthwise {
        // The direct kernels pad each plane into per-thread scratch (about three padded planes
        // in backward), which a huge padding makes far larger than the input.
        let (plane, overflow) = (g.h + g.pt + g.pb).multipliedReportingOverflow(by: g.w + g.pl + g.pr)
        guard !overflow else { throw TensorError("conv2d", "padding \(padding) on input \(fmt(input.shape)) is too large") }
        try MemoryLimit.check(count: plane, elementSize: 3 * MemoryLayout<Float>.stride * Runtime.availableThreads, op: "conv2d")
    }
    if g.isDepthwise {
        depthwiseConv2dForward(out: out.data, input: input.data, weight: weight.data, bias: bias.map { UnsafePointer($0.data) }, g)
    } else {
        conv2dForward(out: out.data, input: input.data, weight: weight.data, bias: bias.map { UnsafePointer($0.data) }, g)
    }
    let inputs = bias.map { [input, weight, $0] } ?? [input, weight]
    return record(out, "conv2d", inputs) { [x = input, w = weight, b = bias] dy in
        let dx = try x.requiresGrad ? Tensor(x.shape, zeroed: false) : nil
        let dw = try w.requiresGrad ? Tensor(w.shape, zeroed: false) : nil
        let db = try (b?.requiresGrad ?? false) ? Tensor([g.o], zeroed: false) : nil
        if g.isDepthwise {
            depthwiseConv2dBackward(dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data, weight: w.data, g)
        } else {
            conv2dBackward(dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data, weight: w.data, g)
        }
        return b == nil ? [dx, dw] : [dx, dw, db]
    }
}

// MARK: - Batch norm

/// Batch norm over `[N, C, H, W]` (or `[N, C]`, `[N, C, L]`), like `F.batch_norm`.
///
/// In training mode it normalises with the batch statistics and, when given, updates
/// `runningMean` / `runningVar` in place: `r = (1 - momentum) * r + momentum * batch`, with the
/// unbiased batch variance for `runningVar` (exactly as PyTorch). In eval mode it uses the
/// running statistics, which are then required. `weight` / `bias` (`[C]`) are the optional affine
/// parameters. The running statistics are buffers: no gradient flows to them.
///
/// `activation` fuses an activation after the norm in training mode: `relu6(batch_norm(x))` (or
/// relu / silu) in one pass, without the intermediate tensor, with results identical to the two
/// ops in a row (see `FusedActivation`). In eval mode the activation runs as its own op after the
/// norm.
public func batchNorm2d(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                        training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, activation: FusedActivation? = nil) throws -> Tensor {
    let op = "batch_norm"
    guard input.dim >= 2 else { throw TensorError(op, "expected an input of at least 2 dims [N, C, ...], got shape \(fmt(input.shape))") }
    let n = input.shape[0], c = input.shape[1], hw = input.shape.dropFirst(2).reduce(1, *)
    for (name, t) in [("running_mean", runningMean), ("running_var", runningVar), ("weight", weight), ("bias", bias)] {
        if let t, t.shape != [c] { throw TensorError(op, "\(name) has shape \(fmt(t.shape)), expected [\(c)] for input \(fmt(input.shape))") }
    }
    guard eps > 0, eps.isFinite else { throw TensorError(op, "eps must be a positive finite number, got \(eps)") }
    guard momentum.isFinite else { throw TensorError(op, "momentum must be finite, got \(momentum)") }
    guard (runningMean == nil) == (runningVar == nil) else { throw TensorError(op, "running_mean and running_var must be given together") }
    if !training && runningMean == nil { throw TensorError(op, "running_mean and running_var must be defined in evaluation mode") }
    if training && n * hw <= 1 { throw TensorError(op, "expected more than 1 value per channel when training, got input size \(fmt(input.shape))") }
    guard input.count > 0 else { throw TensorError(op, "empty input \(fmt(input.shape))") }

    // Per-channel statistics used by forward and backward: [mean(C), invstd(C)].
    let stats = try Tensor([2, c], zeroed: false)
    let mean = stats.data, invstd = stats.data + c
    if training {
        let variance = UnsafeMutablePointer<Float>.allocate(capacity: c)
        defer { variance.deallocate() }
        batchNormStats(mean: mean, variance: variance, input.data, n: n, c: c, hw: hw)
        for ch in 0..<c { invstd[ch] = 1 / (variance[ch] + eps).squareRoot() }
        if let rm = runningMean, let rv = runningVar {
            let m = Float(n * hw)
            for ch in 0..<c {
                rm.data[ch] = (1 - momentum) * rm.data[ch] + momentum * mean[ch]
                rv.data[ch] = (1 - momentum) * rv.data[ch] + momentum * variance[ch] * m / (m - 1)
            }
        }
    } else if let rm = runningMean, let rv = runningVar {
        for ch in 0..<c {
            mean[ch] = rm.data[ch]
            invstd[ch] = 1 / (rv.data[ch] + eps).squareRoot()
        }
    }
    let out = try Tensor(input.shape, zeroed: false)
    let wp = weight.map { UnsafePointer($0.data) }, bp = bias.map { UnsafePointer($0.data) }
    switch training ? activation : nil {
    case nil: batchNormForward(out: out.data, input: input.data, mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
    case .relu?: batchNormForward(Relu.self, out: out.data, input: input.data, mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
    case .relu6?: batchNormForward(Relu6.self, out: out.data, input: input.data, mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
    case .silu?: batchNormForward(Silu.self, out: out.data, input: input.data, mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
    }
    if !training, let activation {
        // Eval: the plain activation after the norm (same results, recorded as its own op).
        let y = record(out, op, [input] + [weight, bias].compactMap { $0 }, batchNormGradient(input, weight, bias, stats, training: false, n: n, c: c, hw: hw))
        switch activation {
        case .relu: return try y.relu()
        case .relu6: return try y.relu6()
        case .silu: return try y.silu()
        }
    }
    return record(out, activation.map { "batch_norm+\($0)" } ?? op, [input] + [weight, bias].compactMap { $0 },
                  batchNormGradient(input, weight, bias, stats, training: training, activation: activation, n: n, c: c, hw: hw))
}

/// Activations `batchNorm2d` can fuse in training mode.
public enum FusedActivation: String, Sendable {
    case relu, relu6, silu
}

/// The backward of `batchNorm2d` (with the activation fused in training mode, if any).
private func batchNormGradient(_ input: Tensor, _ weight: Tensor?, _ bias: Tensor?, _ stats: Tensor, training: Bool,
                               activation: FusedActivation? = nil, n: Int, c: Int, hw: Int) -> (Tensor) throws -> [Tensor?] {
    return { [x = input, w = weight, b = bias] dy in
        let dx = try x.requiresGrad ? Tensor(x.shape, zeroed: false) : nil
        let dw = try (w?.requiresGrad ?? false) ? Tensor([c], zeroed: false) : nil
        let db = try (b?.requiresGrad ?? false) ? Tensor([c], zeroed: false) : nil
        let wp = w.map { UnsafePointer($0.data) }, bp = b.map { UnsafePointer($0.data) }
        let mean = stats.data, invstd = stats.data + c
        if training {
            switch activation {
            case nil:
                batchNormBackwardTraining(dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data,
                                          mean: mean, invstd: invstd, weight: wp, n: n, c: c, hw: hw)
            case .relu?:
                batchNormBackwardTraining(Relu.self, dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data,
                                          mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
            case .relu6?:
                batchNormBackwardTraining(Relu6.self, dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data,
                                          mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
            case .silu?:
                batchNormBackwardTraining(Silu.self, dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data,
                                          mean: mean, invstd: invstd, weight: wp, bias: bp, n: n, c: c, hw: hw)
            }
        } else {
            batchNormBackwardEval(dinput: dx?.data, dweight: dw?.data, dbias: db?.data, dout: dy.data, input: x.data,
                                  mean: mean, invstd: invstd, weight: wp, n: n, c: c, hw: hw)
        }
        var grads: [Tensor?] = [dx]
        if w != nil { grads.append(dw) }
        if b != nil { grads.append(db) }
        return grads
    }
}

// MARK: - Linear

/// `input [*, in] @ weight[out, in]^T + bias[out]`, like `F.linear` (a 1-D input gives a 1-D output).
public func linear(_ input: Tensor, _ weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    let op = "linear"
    guard weight.dim == 2 else { throw TensorError(op, "expected a 2-D weight [out, in], got shape \(fmt(weight.shape))") }
    guard input.dim >= 1 else { throw TensorError(op, "expected an input of at least 1 dim, got a scalar") }
    let (outF, inF) = (weight.shape[0], weight.shape[1])
    guard input.shape.last! == inF else {
        throw TensorError(op, "input \(fmt(input.shape)) and weight \(fmt(weight.shape)) cannot be multiplied (last dim \(input.shape.last!) vs \(inF))")
    }
    if let bias, bias.shape != [outF] { throw TensorError(op, "bias shape \(fmt(bias.shape)) does not match out features \(outF) (expected [\(outF)])") }
    let rows = input.count / Swift.max(inF, 1)
    let batch = inF == 0 ? input.shape.dropLast().reduce(1, *) : rows
    let out = try Tensor(Array(input.shape.dropLast()) + [outF], zeroed: false, op: "linear")
    if inF == 0 {
        for r in 0..<batch { for j in 0..<outF { out.data[r * outF + j] = bias?.data[j] ?? 0 } }
    } else {
        linearForward(out: out.data, input: input.data, weight: weight.data, bias: bias.map { UnsafePointer($0.data) },
                      batch: batch, inFeatures: inF, outFeatures: outF)
    }
    let inputs = bias.map { [input, weight, $0] } ?? [input, weight]
    return record(out, op, inputs) { [x = input, w = weight, b = bias] dy in
        // The kernels overwrite every element (zeros are only needed for an empty inner dim).
        let dx = try x.requiresGrad ? Tensor(x.shape, zeroed: inF == 0) : nil
        let dw = try w.requiresGrad ? Tensor(w.shape, zeroed: inF == 0) : nil
        let db = try (b?.requiresGrad ?? false) ? Tensor([outF], zeroed: false) : nil
        if inF > 0 || db != nil {
            linearBackward(dinput: inF > 0 ? dx?.data : nil, dweight: inF > 0 ? dw?.data : nil, dbias: db?.data, dout: dy.data,
                           input: x.data, weight: w.data, batch: batch, inFeatures: inF, outFeatures: outF)
        }
        return b == nil ? [dx, dw] : [dx, dw, db]
    }
}

// MARK: - Pooling

/// Max pooling over `[N, C, H, W]` (or `[C, H, W]`), like `F.max_pool2d`: `stride` defaults to
/// the kernel size, `padding` (1 or 2 entries, at most half the kernel) pads with -infinity,
/// `ceilMode` rounds the output size up. The gradient goes to each window's (first) maximum.
public func maxPool2d(_ input: Tensor, kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0], dilation: [Int] = [1],
                      ceilMode: Bool = false) throws -> Tensor {
    let g = try PoolGeometry(op: "max_pool2d", input: input.shape, kernel: kernel, stride: stride, padding: padding,
                             dilation: dilation, ceilMode: ceilMode)
    // Argmax offsets within a plane are Int32.
    guard g.h * g.w <= Int(Int32.max) else { throw TensorError("max_pool2d", "input planes of \(g.h)x\(g.w) are too large (at most 2^31 - 1 pixels)") }
    let out = try Tensor(g.outShape, zeroed: false, op: "max_pool2d")
    try MemoryLimit.check(count: out.count, elementSize: MemoryLayout<Int32>.stride, op: "max_pool2d")
    let indices = UnsafeMutableBufferPointer<Int32>.allocate(capacity: out.count)
    maxPool2dForward(out: out.data, indices: indices.baseAddress!, input: input.data, g)
    let holder = IndexBuffer(indices)
    let result = record(out, "max_pool2d", [input]) { [x = input] dy in
        let dx = try Tensor(x.shape, zeroed: false)
        maxPool2dBackward(dinput: dx.data, dout: dy.data, indices: holder.buffer.baseAddress!, g)
        return [dx]
    }
    return result
}

/// Owns the argmax indices of a max-pool call for as long as its backward closure lives.
final class IndexBuffer {
    let buffer: UnsafeMutableBufferPointer<Int32>
    init(_ b: UnsafeMutableBufferPointer<Int32>) { buffer = b }
    deinit { buffer.deallocate() }
}

/// Average pooling over `[N, C, H, W]` (or `[C, H, W]`), like `F.avg_pool2d`. With
/// `countIncludePad` the zero padding counts in each window's divisor.
public func avgPool2d(_ input: Tensor, kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0], ceilMode: Bool = false,
                      countIncludePad: Bool = true) throws -> Tensor {
    let g = try PoolGeometry(op: "avg_pool2d", input: input.shape, kernel: kernel, stride: stride, padding: padding,
                             dilation: [1], ceilMode: ceilMode)
    let out = try Tensor(g.outShape, zeroed: false, op: "avg_pool2d")
    avgPool2dForward(out: out.data, input: input.data, g, countIncludePad: countIncludePad)
    return record(out, "avg_pool2d", [input]) { [x = input] dy in
        let dx = try Tensor(x.shape, zeroed: false)
        avgPool2dBackward(dinput: dx.data, dout: dy.data, g, countIncludePad: countIncludePad)
        return [dx]
    }
}

/// Adaptive average pooling to `outputSize` (`[s]` or `[oh, ow]`), like `F.adaptive_avg_pool2d`:
/// output cell i averages input rows `floor(i*H/OH) ..< ceil((i+1)*H/OH)` (likewise columns).
public func adaptiveAvgPool2d(_ input: Tensor, outputSize: [Int]) throws -> Tensor {
    let op = "adaptive_avg_pool2d"
    guard input.dim == 3 || input.dim == 4 else { throw TensorError(op, "expected a 3-D or 4-D input, got shape \(fmt(input.shape))") }
    let (oh, ow) = try pair(outputSize, "output size", op: op, minimum: 1)
    let h = input.shape[input.dim - 2], w = input.shape[input.dim - 1]
    guard h > 0 && w > 0 else { throw TensorError(op, "input \(fmt(input.shape)) has an empty spatial size") }
    // The window bounds compute i * H for i < OH (likewise columns).
    guard !h.multipliedReportingOverflow(by: oh).overflow && !w.multipliedReportingOverflow(by: ow).overflow else {
        throw TensorError(op, "output size \(outputSize) is too large for input \(fmt(input.shape))")
    }
    let planes = input.shape.dropLast(2).reduce(1, *)
    let out = try Tensor(Array(input.shape.dropLast(2)) + [oh, ow], zeroed: false, op: op)
    adaptiveAvgPool2dForward(out: out.data, input: input.data, planes: planes, h: h, w: w, oh: oh, ow: ow)
    return record(out, op, [input]) { [x = input] dy in
        let dx = try Tensor(x.shape, zeroed: false)
        adaptiveAvgPool2dBackward(dinput: dx.data, dout: dy.data, planes: planes, h: h, w: w, oh: oh, ow: ow)
        return [dx]
    }
}

// MARK: - Dropout

/// Inverted dropout: zeroes with probability `p` and scales survivors by 1/(1-p) in training;
/// the identity in eval or when `p == 0`. The mask is drawn from `generator`.
public func dropout(_ input: Tensor, p: Float, training: Bool, generator: Generator = .default) throws -> Tensor {
    guard p >= 0 && p <= 1 else { throw TensorError("dropout", "probability has to be between 0 and 1, but got \(p)") }
    if !training || p == 0 { return input }
    let scale = try Tensor(input.shape, zeroed: false)
    dropoutMask(scale.data, count: scale.count, p: p, generator: generator)
    let out = try Tensor(input.shape, zeroed: false)
    maskedScale(out.data, input.data, scale.data, count: out.count)
    return record(out, "dropout", [input]) { dy in
        let dx = try Tensor(dy.shape, zeroed: false)
        maskedScale(dx.data, dy.data, scale.data, count: dx.count)
        return [dx]
    }
}

/// torchvision's `stochastic_depth`: drops the residual branch per sample (`row`) or for the whole
/// batch, scaling survivors by 1/(1-p) (unless 1-p == 0); identity in eval or when p == 0.
public func stochasticDepth(_ input: Tensor, p: Float, mode: StochasticDepthMode = .row, training: Bool,
                            generator: Generator = .default) throws -> Tensor {
    let op = "stochastic_depth"
    guard p >= 0 && p <= 1 else { throw TensorError(op, "drop probability has to be between 0 and 1, but got \(p)") }
    if !training || p == 0 { return input }
    guard input.dim >= 1 else { throw TensorError(op, "expected an input with a batch dim, got a scalar") }
    let survival = 1 - p
    let rows = input.shape[0], cols = rows == 0 ? 0 : input.count / rows
    let draws = mode == .row ? rows : 1
    let scale = try Tensor([rows], zeroed: false)
    for r in 0..<draws {
        // Bernoulli(survival), divided by the survival rate only when it is positive (torchvision).
        let keep = generator.nextFloat() < survival
        scale.data[r] = keep ? (survival > 0 ? 1 / survival : 1) : 0
    }
    if mode == .batch { scale.data.update(repeating: rows > 0 ? scale.data[0] : 0, count: rows) }
    let out = try Tensor(input.shape, zeroed: false)
    rowScale(out.data, input.data, scale.data, rows: rows, cols: cols)
    return record(out, op, [input]) { dy in
        let dx = try Tensor(dy.shape, zeroed: false)
        rowScale(dx.data, dy.data, scale.data, rows: rows, cols: cols)
        return [dx]
    }
}

// MARK: - Activations

extension Tensor {
    /// `min(max(x, 0), 6)` (MobileNetV2); the gradient passes where 0 < x < 6.
    public func relu6() throws -> Tensor { try activation("relu6", relu6Forward, relu6Backward) }
    /// `x * sigmoid(x)` (also called swish; EfficientNet).
    public func silu() throws -> Tensor { try activation("silu", siluForward, siluBackward) }
    /// `x * relu6(x + 3) / 6`.
    public func hardswish() throws -> Tensor { try activation("hardswish", hardswishForward, hardswishBackward) }
    /// `relu6(x + 3) / 6`.
    public func hardsigmoid() throws -> Tensor { try activation("hardsigmoid", hardsigmoidForward, hardsigmoidBackward) }

    private func activation(_ name: String,
                            _ forward: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void,
                            _ backward: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void) throws -> Tensor {
        let out = try Tensor(shape, zeroed: false)
        forward(out.data, data, count)
        return record(out, name, [self]) { [x = self] dy in
            let dx = try Tensor(x.shape, zeroed: false)
            backward(dx.data, dy.data, x.data, x.count)
            return [dx]
        }
    }
}
