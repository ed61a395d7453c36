// Per-layer summary: output shape, parameters and multiply-accumulates for one input size.
//
// MACs count the multiply-adds of convolutions and linear layers for ONE sample (the usual
// "FLOPs" of model tables): Conv2d = Cout * Hout * Wout * (Cin / groups) * kH * kW,
// Linear = out * in (per row). BatchNorm, activations, pooling and the SE product are not counted.

import Foundation
import SSKDTensor

/// Collects (module, output shape) pairs while a summary forward runs.
final class SummaryRecorder {
    nonisolated(unsafe) static var active: SummaryRecorder?
    var outputs: [(ObjectIdentifier, [Int])] = []
    func record(_ m: Module, input: Tensor, output: Tensor) { outputs.append((ObjectIdentifier(m), output.shape)) }
}

/// The result of `Module.summary(input:)`.
public struct ModelSummary: CustomStringConvertible {
    public struct Row: Equatable {
        /// Dotted path (`features.1.conv.0.0`).
        public let name: String
        public let type: String
        /// Output shape for a batch of one.
        public let outputShape: [Int]
        public let parameters: Int
        public let macs: Int
    }
    /// Leaf layers in execution order.
    public let rows: [Row]
    public let inputShape: [Int]
    /// All parameters of the model (shared ones once).
    public let totalParameters: Int
    public let trainableParameters: Int
    /// Conv + linear multiply-adds for one sample.
    public var totalMACs: Int { rows.reduce(0) { $0 + $1.macs } }

    public var description: String {
        let w0 = max(24, rows.map { $0.name.count + $0.type.count + 5 }.max() ?? 0)   // "name (type)" + 2 spaces
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            s.count >= w ? s : (left ? String(repeating: " ", count: w - s.count) + s : s + String(repeating: " ", count: w - s.count))
        }
        var lines = [pad("Layer (type)", w0) + pad("Output shape", 22) + pad("Params", 12, left: true) + pad("MACs", 14, left: true)]
        let rule = String(repeating: "=", count: w0 + 48)
        lines.append(rule)
        for r in rows {
            lines.append(pad("\(r.name) (\(r.type))", w0) + pad("\(r.outputShape)", 22) + pad(grouped(r.parameters), 12, left: true) + pad(grouped(r.macs), 14, left: true))
        }
        lines.append(rule)
        lines.append("Input shape: \(inputShape)")
        lines.append("Total params: \(grouped(totalParameters)) (\(String(format: "%.2f", Double(totalParameters) / 1e6))M)")
        lines.append("Trainable params: \(grouped(trainableParameters))")
        lines.append("Multiply-adds (conv + linear): \(grouped(totalMACs)) (\(String(format: "%.1f", Double(totalMACs) / 1e6))M)")
        return lines.joined(separator: "\n")
    }
}

func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, c) in s.reversed().enumerated() { if i > 0 && i % 3 == 0 { out.append(",") }; out.append(c) }
    return String(out.reversed())
}

extension Module {
    /// Runs one zero sample of shape `[1] + input` (e.g. `[3, 96, 96]`) through the model in eval
    /// mode without gradients and tabulates every leaf layer. The model's mode is restored.
    public func summary(input: [Int]) throws -> ModelSummary {
        guard SummaryRecorder.active == nil else { throw TensorError("summary", "a summary is already running") }
        let x = try Tensor.zeros([1] + input)
        let wasTraining = training
        let rec = SummaryRecorder()
        SummaryRecorder.active = rec
        defer { SummaryRecorder.active = nil; train(wasTraining) }
        eval()
        _ = try withNoGrad { try self(x) }
        var names: [ObjectIdentifier: String] = [:]
        for (n, m) in namedModules() where names[ObjectIdentifier(m)] == nil { names[ObjectIdentifier(m)] = n }
        var byID: [ObjectIdentifier: Module] = [:]
        for m in modules() { byID[ObjectIdentifier(m)] = m }
        var rows: [ModelSummary.Row] = []
        for (id, shape) in rec.outputs {
            guard let m = byID[id], m.children.isEmpty else { continue }
            let params = m.localParameters.reduce(0) { $0 + $1.tensor.count }
            var macs = 0
            let perSample = shape.dropFirst().reduce(1, *)
            if let c = m as? Conv2d {
                macs = perSample * (c.inChannels / c.groups) * c.kernelSize[0] * c.kernelSize[1]
            } else if let l = m as? Linear {
                macs = perSample * l.inFeatures
            }
            rows.append(.init(name: names[id] ?? "?", type: m.typeName, outputShape: shape, parameters: params, macs: macs))
        }
        return ModelSummary(rows: rows, inputShape: [1] + input, totalParameters: parameterCount, trainableParameters: trainableParameterCount)
    }
}
