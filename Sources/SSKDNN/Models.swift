// Models by name, for recipes and the command line: "mobilenet_v2", "efficientnet_b0" ... "b7".

import SSKDTensor

public enum Models {
    /// The names `make` knows.
    public static let names: [String] = ["mobilenet_v2"] + (0...7).map { "efficientnet_b\($0)" }

    /// A torchvision-architecture model by name with `classes` outputs (torchvision's defaults
    /// otherwise: dropout, stochastic depth, width and depth of the variant).
    public static func make(_ name: String, classes: Int = 1000, inputChannels: Int = 3, initialize: Bool = true,
                            generator: Generator = .default) throws -> Module {
        let m: Module
        if name == "mobilenet_v2" {
            m = try MobileNetV2(.init(classes: classes, inputChannels: inputChannels), initialize: initialize, generator: generator)
        } else if name.hasPrefix("efficientnet_b"), let n = Int(name.dropFirst("efficientnet_b".count)), (0...7).contains(n) {
            var c = try EfficientNet.Config.variant(n, classes: classes)
            c.inputChannels = inputChannels
            m = try EfficientNet(c, initialize: initialize, generator: generator)
        } else {
            throw TensorError("models", "unknown model '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        m.constructor = ModelConstructor("models." + name, options: ["classes": .int(classes), "in_channels": .int(inputChannels)])
        return m
    }
}

/// A model constructor by name with its scalar options, e.g. `models.efficientnet_b0{classes =
/// 10, in_channels = 1}` or `model_variants.small_cnn{width = 16}`: enough to build the same
/// architecture again (weights come separately). Encoded in JSON as
/// `{"name": "models.efficientnet_b0", "options": {"classes": 10, "in_channels": 1}}`.
public struct ModelConstructor: Codable, Equatable, Sendable, CustomStringConvertible {
    /// A scalar option value (integers stay integers: Lua tells 10 from 10.0).
    public enum Option: Codable, Equatable, Sendable, CustomStringConvertible {
        case int(Int), number(Double), string(String), bool(Bool)

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "an option must be a number, a string or a boolean") }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .int(let i): try c.encode(i)
            case .number(let d): try c.encode(d)
            case .string(let s): try c.encode(s)
            case .bool(let b): try c.encode(b)
            }
        }

        /// As Lua source (`10`, `0.5`, `"x"`, `true`).
        public var description: String {
            switch self {
            case .int(let i): return String(i)
            case .number(let d): return d.description
            case .string(let s): return SafeTensors.jsonString(s)
            case .bool(let b): return b ? "true" : "false"
            }
        }
    }

    /// The dotted global path of the constructor: `models.<name>` or `model_variants.<name>`.
    public var name: String
    public var options: [String: Option]

    public init(_ name: String, options: [String: Option] = [:]) {
        self.name = name
        self.options = options
    }

    /// `models.efficientnet_b0{classes = 10, in_channels = 1}` (options sorted by name).
    public var description: String {
        name + "{" + options.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: ", ") + "}"
    }
}
