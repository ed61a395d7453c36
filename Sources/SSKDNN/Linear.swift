// Fully connected layer. Shapes: input [*, in], weight [out, in], bias [out], output [*, out].

import SSKDTensor

/// `nn.Linear`: `y = x W^T + b`. Initialised like PyTorch's default (U(+-1/sqrt(in)) for both)
/// unless `initialize` is false.
public final class Linear: Module {
    public override var isPerSampleInEval: Bool { true }
    public let inFeatures: Int, outFeatures: Int
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, initialize: Bool = true, generator: Generator = .default) throws {
        guard inFeatures > 0, outFeatures > 0 else {
            throw TensorError("Linear", "in_features and out_features must be positive, got \(inFeatures), \(outFeatures)")
        }
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        do {
            weight = try Tensor.zeros([outFeatures, inFeatures])
            self.bias = bias ? try Tensor.zeros([outFeatures]) : nil
        } catch {
            throw TensorError("Linear", "in_features \(inFeatures), out_features \(outFeatures): \(error)")
        }
        super.init()
        registerParameter("weight", weight)
        if let b = self.bias { registerParameter("bias", b) }
        if initialize { Init.torchDefault(weight: weight, bias: self.bias, generator: generator) }
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try linear(x, weight, bias: bias) }

    public override var extraRepr: String { "in_features=\(inFeatures), out_features=\(outFeatures), bias=\(pyBool(bias != nil))" }
}

/// The `Linear(lastChannel, classes)` head of the classification models, with an error that names
/// the `classes` argument when its weight cannot be allocated.
func classifierLinear(_ lastChannel: Int, _ classes: Int, generator: Generator, model: String) throws -> Linear {
    do { return try Linear(lastChannel, classes, initialize: false, generator: generator) } catch {
        throw TensorError(model, "classes \(classes): \(error)")
    }
}
