// Squeeze-and-excitation (torchvision.ops.SqueezeExcitation).
// Shapes: x [N, C, H, W] -> avgpool [N, C, 1, 1] -> fc1 (1x1 conv) [N, S, 1, 1] -> activation
// -> fc2 [N, C, 1, 1] -> scale activation -> x * scale (broadcast over H, W).

import SSKDTensor

public final class SqueezeExcitation: Module {
    public let inputChannels: Int, squeezeChannels: Int
    public let avgpool: AdaptiveAvgPool2d
    public let fc1: Conv2d, fc2: Conv2d
    public let activation: Module, scaleActivation: Module

    public init(_ inputChannels: Int, _ squeezeChannels: Int, activation: Module = ReLU(), scaleActivation: Module = Sigmoid(),
                initialize: Bool = true, generator: Generator = .default) throws {
        self.inputChannels = inputChannels; self.squeezeChannels = squeezeChannels
        avgpool = AdaptiveAvgPool2d(1)
        fc1 = try Conv2d(inputChannels, squeezeChannels, kernelSize: 1, initialize: initialize, generator: generator)
        fc2 = try Conv2d(squeezeChannels, inputChannels, kernelSize: 1, initialize: initialize, generator: generator)
        self.activation = activation; self.scaleActivation = scaleActivation
        super.init()
        registerModule("avgpool", avgpool)
        registerModule("fc1", fc1)
        registerModule("fc2", fc2)
        registerModule("activation", activation)
        registerModule("scale_activation", scaleActivation)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        var s = try avgpool(x)
        s = try activation(fc1(s))
        s = try scaleActivation(fc2(s))
        return try s * x
    }
}
