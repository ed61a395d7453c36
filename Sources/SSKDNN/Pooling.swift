// Pooling and reshaping layers. Shapes: [N, C, H, W] -> [N, C, Hout, Wout]; Flatten merges dims.

import SSKDTensor

public final class MaxPool2d: Module {
    public override var isPerSampleInEval: Bool { true }
    public let kernelSize: [Int], stride: [Int], padding: [Int], dilation: [Int]
    public let ceilMode: Bool
    public init(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0], dilation: [Int] = [1], ceilMode: Bool = false) {
        self.kernelSize = kernelSize; self.stride = stride ?? kernelSize; self.padding = padding
        self.dilation = dilation; self.ceilMode = ceilMode
    }
    public override func forward(_ x: Tensor) throws -> Tensor {
        try maxPool2d(x, kernel: kernelSize, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }
    public override var extraRepr: String {
        "kernel_size=\(pyScalarOrTuple(kernelSize)), stride=\(pyScalarOrTuple(stride)), padding=\(pyScalarOrTuple(padding)), dilation=\(pyScalarOrTuple(dilation)), ceil_mode=\(pyBool(ceilMode))"
    }
}

public final class AvgPool2d: Module {
    public override var isPerSampleInEval: Bool { true }
    public let kernelSize: [Int], stride: [Int], padding: [Int]
    public let ceilMode: Bool, countIncludePad: Bool
    public init(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0], ceilMode: Bool = false, countIncludePad: Bool = true) {
        self.kernelSize = kernelSize; self.stride = stride ?? kernelSize; self.padding = padding
        self.ceilMode = ceilMode; self.countIncludePad = countIncludePad
    }
    public override func forward(_ x: Tensor) throws -> Tensor {
        try avgPool2d(x, kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode, countIncludePad: countIncludePad)
    }
    public override var extraRepr: String {
        "kernel_size=\(pyScalarOrTuple(kernelSize)), stride=\(pyScalarOrTuple(stride)), padding=\(pyScalarOrTuple(padding))"
    }
}

/// `nn.AdaptiveAvgPool2d`: averages each channel down to `outputSize` (`[1]` = global pooling).
public final class AdaptiveAvgPool2d: Module {
    public override var isPerSampleInEval: Bool { true }
    public let outputSize: [Int]
    public init(outputSize: [Int]) { self.outputSize = outputSize }
    public convenience init(_ outputSize: Int) { self.init(outputSize: [outputSize]) }
    public override func forward(_ x: Tensor) throws -> Tensor {
        try adaptiveAvgPool2d(x, outputSize: outputSize.count == 1 ? [outputSize[0], outputSize[0]] : outputSize)
    }
    public override var extraRepr: String { "output_size=\(pyScalarOrTuple(outputSize))" }
}

/// `nn.Flatten(start_dim=1, end_dim=-1)`.
public final class Flatten: Module {
    /// Per-sample when the batch dim is kept (a negative start depends on the input's rank).
    public override var isPerSampleInEval: Bool { startDim >= 1 }
    public let startDim: Int, endDim: Int
    public init(startDim: Int = 1, endDim: Int = -1) { self.startDim = startDim; self.endDim = endDim }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.flatten(start: startDim, end: endDim) }
    public override var extraRepr: String { "start_dim=\(startDim), end_dim=\(endDim)" }
}

/// An int as Python prints it when given one value, a tuple otherwise.
func pyScalarOrTuple(_ v: [Int]) -> String { v.count == 1 ? "\(v[0])" : pyTuple(v) }
