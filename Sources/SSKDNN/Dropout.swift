// Regularisers that are active only in training mode (shapes unchanged).

import SSKDTensor

/// `nn.Dropout`: zeroes elements with probability `p` and scales the rest by 1/(1-p) while
/// training; the identity in eval mode.
public final class Dropout: Module {
    public override var isPerSampleInEval: Bool { true }
    public let p: Double
    public let inplace: Bool
    /// Source of the masks (seed it for reproducible runs).
    public var generator: Generator

    public init(p: Double = 0.5, inplace: Bool = false, generator: Generator = .default) throws {
        guard p >= 0, p <= 1 else { throw TensorError("Dropout", "dropout probability has to be between 0 and 1, but got \(p)") }
        self.p = p; self.inplace = inplace; self.generator = generator
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard training, p > 0 else { return x }
        return try dropout(x, p: Float(p), training: true, generator: generator)
    }

    public override var extraRepr: String { "p=\(pyFloat(p)), inplace=\(pyBool(inplace))" }
}

/// torchvision's `StochasticDepth`: drops a residual branch with probability `p` per sample
/// (`row`) or per batch, scaling survivors by 1/(1-p); the identity in eval mode.
public final class StochasticDepth: Module {
    public override var isPerSampleInEval: Bool { true }
    public let p: Double
    public let mode: StochasticDepthMode
    public var generator: Generator

    public init(p: Double, mode: StochasticDepthMode = .row, generator: Generator = .default) throws {
        guard p >= 0, p <= 1 else { throw TensorError("StochasticDepth", "drop probability has to be between 0 and 1, but got \(p)") }
        self.p = p; self.mode = mode; self.generator = generator
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard training, p > 0 else { return x }
        return try stochasticDepth(x, p: Float(p), mode: mode, training: true, generator: generator)
    }

    // torchvision overrides __repr__ itself: "StochasticDepth(p=0.025, mode=row)".
    public override var extraRepr: String { "p=\(pyFloat(p)), mode=\(mode.rawValue)" }
}
