// CNN kernels as differentiable functions over NCHW Float32 tensors (issue: CNN kernels).
// Signatures are fixed here so the nn layer can be written against them; bodies are filled in
// by the kernels work (files under Kernels/).

/// How stochastic depth drops residual branches (torchvision's `mode`).
public enum StochasticDepthMode: String, Sendable {
    /// One Bernoulli draw per sample.
    case row
    /// One draw for the whole batch.
    case batch
}

/// 2-D convolution, like `F.conv2d`.
/// - input `[N, Cin, H, W]`, weight `[Cout, Cin/groups, kH, kW]`, bias `[Cout]`.
/// - `stride`, `dilation`: 1 or 2 entries; `padding`: 1, 2 (`[ph, pw]`) or 4 entries
///   (`[top, bottom, left, right]`), zeros.
public func conv2d(_ input: Tensor, _ weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1], padding: [Int] = [0],
                   dilation: [Int] = [1], groups: Int = 1) throws -> Tensor {
    throw TensorError("conv2d", "not implemented yet")
}

/// Batch norm over `[N, C, H, W]`, like `F.batch_norm`. In training mode uses batch statistics
/// and updates the running mean and (unbiased) running variance in place with `momentum`.
public func batchNorm2d(_ input: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor?, bias: Tensor?,
                        training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) throws -> Tensor {
    throw TensorError("batch_norm", "not implemented yet")
}

/// `input [*, in] @ weight[out, in]^T + bias[out]`, like `F.linear`.
public func linear(_ input: Tensor, _ weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    throw TensorError("linear", "not implemented yet")
}

public func maxPool2d(_ input: Tensor, kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0], dilation: [Int] = [1],
                      ceilMode: Bool = false) throws -> Tensor {
    throw TensorError("max_pool2d", "not implemented yet")
}

public func avgPool2d(_ input: Tensor, kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0], ceilMode: Bool = false,
                      countIncludePad: Bool = true) throws -> Tensor {
    throw TensorError("avg_pool2d", "not implemented yet")
}

public func adaptiveAvgPool2d(_ input: Tensor, outputSize: [Int]) throws -> Tensor {
    throw TensorError("adaptive_avg_pool2d", "not implemented yet")
}

/// Inverted dropout: zeroes with probability `p` and scales survivors by 1/(1-p) in training.
public func dropout(_ input: Tensor, p: Float, training: Bool, generator: Generator = .default) throws -> Tensor {
    throw TensorError("dropout", "not implemented yet")
}

/// torchvision's `stochastic_depth`: drops the residual branch per sample (`row`) or for the whole
/// batch, scaling survivors by 1/(1-p); identity in eval or when p == 0.
public func stochasticDepth(_ input: Tensor, p: Float, mode: StochasticDepthMode = .row, training: Bool,
                            generator: Generator = .default) throws -> Tensor {
    throw TensorError("stochastic_depth", "not implemented yet")
}

extension Tensor {
    public func relu6() throws -> Tensor { throw TensorError("relu6", "not implemented yet") }
    public func silu() throws -> Tensor { throw TensorError("silu", "not implemented yet") }
    public func hardswish() throws -> Tensor { throw TensorError("hardswish", "not implemented yet") }
    public func hardsigmoid() throws -> Tensor { throw TensorError("hardsigmoid", "not implemented yet") }
}
