// Element-wise activations as modules (shapes unchanged). `inplace` is kept for the printed form:
// their forward never writes into its input. (The fused eval forward of `Sequential` applies
// them in place to a conv output it owns, see `InferenceFusion`.)

import SSKDTensor

/// An activation `BatchNorm2d` can fuse in training mode.
protocol FusableActivation { var fused: FusedActivation { get } }

public final class ReLU: Module, FusableActivation {
    var fused: FusedActivation { .relu }
    public override var isPerSampleInEval: Bool { true }
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.relu() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

/// min(max(x, 0), 6).
public final class ReLU6: Module, FusableActivation {
    var fused: FusedActivation { .relu6 }
    public override var isPerSampleInEval: Bool { true }
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.relu6() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

/// x * sigmoid(x) (swish).
public final class SiLU: Module, FusableActivation {
    var fused: FusedActivation { .silu }
    public override var isPerSampleInEval: Bool { true }
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.silu() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

public final class Sigmoid: Module {
    public override var isPerSampleInEval: Bool { true }
    public override init() {}
    public override func forward(_ x: Tensor) throws -> Tensor { try x.sigmoid() }
}

/// x * relu6(x + 3) / 6.
public final class Hardswish: Module {
    public override var isPerSampleInEval: Bool { true }
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.hardswish() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

/// relu6(x + 3) / 6.
public final class Hardsigmoid: Module {
    public override var isPerSampleInEval: Bool { true }
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.hardsigmoid() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

extension ReLU: InPlaceActivation { func applyInPlace(_ x: Tensor) throws { try x.relu_() } }
extension ReLU6: InPlaceActivation { func applyInPlace(_ x: Tensor) throws { try x.relu6_() } }
extension SiLU: InPlaceActivation { func applyInPlace(_ x: Tensor) throws { try x.silu_() } }
extension Hardswish: InPlaceActivation { func applyInPlace(_ x: Tensor) throws { try x.hardswish_() } }
extension Hardsigmoid: InPlaceActivation { func applyInPlace(_ x: Tensor) throws { try x.hardsigmoid_() } }
