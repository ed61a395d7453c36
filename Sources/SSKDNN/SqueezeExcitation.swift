// Squeeze-and-excitation (torchvision.ops.SqueezeExcitation).
// Shapes: x [N, C, H, W] -> avgpool [N, C, 1, 1] -> fc1 (1x1 conv) [N, S, 1, 1] -> activation
// -> fc2 [N, C, 1, 1] -> scale activation -> x * scale (broadcast over H, W).

import SSKDTensor

public final class SqueezeExcitation: Module {
    public override var isPerSampleInEval: Bool { true }
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
        return try channelScale(x, s)
    }
}

/// `scale * x` for `x [N, C, H, W]` and `scale [N, C, 1, 1]` (the SE gate) as one op. Same values
/// and gradients as the broadcast multiply, but the backward computes
///   dx = dy * scale (broadcast),  dscale[n, c] = sum over (h, w) of dy * x
/// plane by plane, without materialising the `[N, C, H, W]` product `dy * x` first.
func channelScale(_ x: Tensor, _ scale: Tensor) throws -> Tensor {
    guard x.dim == 4, scale.shape == [x.shape[0], x.shape[1], 1, 1] else { return try scale * x }
    let planes = x.shape[0] * x.shape[1], hw = x.shape[2] * x.shape[3]
    let out = try Tensor.empty(x.shape)
    let grain = max(1, 32768 / max(hw, 1))
    let o = out.data, xp = x.data, sp = scale.data
    parallelFor(planes, grain: grain) { r in
        for p in r {
            let k = sp[p], base = p * hw
            for i in 0..<hw { o[base + i] = k * xp[base + i] }
        }
    }
    return record(out, "mul", [scale, x]) { [x, scale] dy in
        let g = dy.data, xp = x.data, sp = scale.data
        var ds: Tensor? = nil, dx: Tensor? = nil
        if scale.requiresGrad {
            let t = try Tensor.empty(scale.shape)
            let d = t.data
            parallelFor(planes, grain: grain) { r in
                for p in r {
                    let base = p * hw
                    var acc: Float = 0
                    for i in 0..<hw { acc += g[base + i] * xp[base + i] }
                    d[p] = acc
                }
            }
            ds = t
        }
        if x.requiresGrad {
            let t = try Tensor.empty(x.shape)
            let d = t.data
            parallelFor(planes, grain: grain) { r in
                for p in r {
                    let k = sp[p], base = p * hw
                    for i in 0..<hw { d[base + i] = k * g[base + i] }
                }
            }
            dx = t
        }
        return [ds, dx]
    }
}
