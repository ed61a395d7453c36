// Models by name, for recipes and the command line: "mobilenet_v2", "efficientnet_b0" ... "b7".

import SSKDTensor

public enum Models {
    /// The names `make` knows.
    public static let names: [String] = ["mobilenet_v2"] + (0...7).map { "efficientnet_b\($0)" }

    /// A torchvision-architecture model by name with `classes` outputs (torchvision's defaults
    /// otherwise: dropout, stochastic depth, width and depth of the variant).
    public static func make(_ name: String, classes: Int = 1000, inputChannels: Int = 3, initialize: Bool = true,
                            generator: Generator = .default) throws -> Module {
        if name == "mobilenet_v2" {
            return try MobileNetV2(.init(classes: classes, inputChannels: inputChannels), initialize: initialize, generator: generator)
        }
        if name.hasPrefix("efficientnet_b"), let n = Int(name.dropFirst("efficientnet_b".count)), (0...7).contains(n) {
            var c = try EfficientNet.Config.variant(n, classes: classes)
            c.inputChannels = inputChannels
            return try EfficientNet(c, initialize: initialize, generator: generator)
        }
        throw TensorError("models", "unknown model '\(name)' (known: \(names.joined(separator: ", ")))")
    }
}
