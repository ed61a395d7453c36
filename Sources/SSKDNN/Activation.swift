// Element-wise activations as modules (shapes unchanged). `inplace` is kept for the printed form
// only: sskd ops never write into their input.

import SSKDTensor

public final class ReLU: Module {
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { x.relu() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

/// min(max(x, 0), 6).
public final class ReLU6: Module {
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.relu6() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

/// x * sigmoid(x) (swish).
public final class SiLU: Module {
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.silu() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

public final class Sigmoid: Module {
    public override init() {}
    public override func forward(_ x: Tensor) throws -> Tensor { x.sigmoid() }
}

/// x * relu6(x + 3) / 6.
public final class Hardswish: Module {
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.hardswish() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}

/// relu6(x + 3) / 6.
public final class Hardsigmoid: Module {
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.hardsigmoid() }
    public override var extraRepr: String { inplace ? "inplace=True" : "" }
}
