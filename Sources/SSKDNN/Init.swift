// Weight initialisation, PyTorch's `nn.init`, drawing from a seeded `Generator`.
//
// Fans of a weight `[out, in/groups, kH, kW]`: fan_in = in/groups * kH * kW,
// fan_out = out * kH * kW (what `torch.nn.init._calculate_fan_in_and_fan_out` computes).

import SSKDTensor

public enum FanMode: String, Sendable { case fanIn = "fan_in", fanOut = "fan_out" }

public enum Init {
    /// (fan_in, fan_out) of a weight of rank >= 2 (rank 1: both its length).
    public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        guard shape.count >= 2 else { let n = shape.first ?? 1; return (n, n) }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// Fills with N(mean, std^2) (`nn.init.normal_`).
    public static func normal_(_ t: Tensor, mean: Float = 0, std: Float = 1, generator: Generator = .default) {
        for i in 0..<t.count { t.data[i] = mean + std * generator.nextNormal() }
    }

    /// Fills with U(low, high) (`nn.init.uniform_`).
    public static func uniform_(_ t: Tensor, low: Float, high: Float, generator: Generator = .default) {
        let span = high - low
        for i in 0..<t.count { t.data[i] = low + span * generator.nextFloat() }
    }

    public static func zeros_(_ t: Tensor) { t.fill_(0) }
    public static func ones_(_ t: Tensor) { t.fill_(1) }

    /// `nn.init.kaiming_normal_(w, a, mode, nonlinearity="leaky_relu")`:
    /// std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)).
    public static func kaimingNormal_(_ t: Tensor, a: Float = 0, mode: FanMode = .fanIn, generator: Generator = .default) {
        let (fi, fo) = fans(t.shape)
        let fan = Float(max(mode == .fanIn ? fi : fo, 1))
        let std = (2 / (1 + a * a)).squareRoot() / fan.squareRoot()
        normal_(t, std: std, generator: generator)
    }

    /// `nn.init.kaiming_uniform_`: bound = gain * sqrt(3 / fan).
    public static func kaimingUniform_(_ t: Tensor, a: Float = 0, mode: FanMode = .fanIn, generator: Generator = .default) {
        let (fi, fo) = fans(t.shape)
        let fan = Float(max(mode == .fanIn ? fi : fo, 1))
        let bound = (2 / (1 + a * a)).squareRoot() * (3 / fan).squareRoot()
        uniform_(t, low: -bound, high: bound, generator: generator)
    }

    /// PyTorch's default for Conv and Linear (`reset_parameters`): kaiming_uniform(a = sqrt(5)),
    /// i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight, and the same bound for the bias.
    static func torchDefault(weight: Tensor, bias: Tensor?, generator: Generator) {
        kaimingUniform_(weight, a: Float(5).squareRoot(), generator: generator)
        if let bias {
            let fi = Float(max(fans(weight.shape).fanIn, 1))
            let b = 1 / fi.squareRoot()
            uniform_(bias, low: -b, high: b, generator: generator)
        }
    }
}
