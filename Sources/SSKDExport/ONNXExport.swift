// ONNX export: a traced eval forward written as an ONNX model (protobuf types generated from the
// official onnx.proto3 by scripts/gen_onnx_proto.sh).
//
// Graph:  input [N, C, H, W] float32  ->  ...layers and ops...  ->  output [N, classes] float32
// N is the symbol "batch" with `dynamicBatch`, else the traced batch size. Weights are
// initializers named by their state-dict keys ("features.0.0.weight"), nodes by their module
// paths, so a netron view reads like `print(model)`.

import Foundation
import SSKDNN
import SSKDTensor
import SwiftProtobuf

/// Writes a model as ONNX, like `torch.onnx.export` with a traced forward.
public enum ONNXExport {
    /// What the export was asked to do.
    public struct Options: Sendable {
        /// The traced input's shape, `[N, C, H, W]` (N is the batch used for tracing).
        public var inputShape: [Int]
        /// Whether the batch dimension of input and output is the symbol "batch" (any size).
        public var dynamicBatch: Bool
        /// The default-domain opset (14...21: HardSwish needs 14).
        public var opset: Int
        /// Name of the graph input and output.
        public var inputName: String, outputName: String
        /// Written into the model's `metadata_props` (class names, mean/std, ...).
        public var metadata: [(String, String)]
        /// Fold each BatchNorm2d that follows a Conv2d into the conv's weight and bias (fewer
        /// nodes, the same function); otherwise BatchNormalization nodes.
        public var foldBatchNorm: Bool

        public init(inputShape: [Int], dynamicBatch: Bool = true, opset: Int = 17, inputName: String = "input",
                    outputName: String = "logits", metadata: [(String, String)] = [], foldBatchNorm: Bool = false) {
            self.inputShape = inputShape; self.dynamicBatch = dynamicBatch; self.opset = opset
            self.inputName = inputName; self.outputName = outputName; self.metadata = metadata
            self.foldBatchNorm = foldBatchNorm
        }
    }

    /// What was written.
    public struct Summary: Sendable {
        public var path: String
        public var bytes: Int
        public var nodes: Int
        public var initializers: Int
        /// ONNX op types used, with counts, most used first.
        public var opCounts: [(String, Int)]
        public var outputShape: [Int]
    }

    public static let supportedOpsets = 14...21

    /// Traces `model` on a random input of `options.inputShape` and writes the ONNX file to
    /// `path` (a temp file renamed into place, so a failed export leaves an older file intact).
    @discardableResult
    public static func export(_ model: Module, to path: String, options: Options) throws -> Summary {
        let (data, summary) = try serialize(model, options: options)
        do { try AtomicFile.write(data, to: path) } catch { throw TensorError("export_onnx", "\(error)") }
        var s = summary
        s.path = path
        return s
    }

    /// The serialized model and its summary (path empty), without writing.
    public static func serialize(_ model: Module, options: Options) throws -> (Data, Summary) {
        let op = "export_onnx"
        guard supportedOpsets.contains(options.opset) else {
            throw TensorError(op, "opset \(options.opset) is not supported (use \(supportedOpsets.lowerBound)...\(supportedOpsets.upperBound))")
        }
        guard options.inputShape.count >= 2, options.inputShape.allSatisfy({ $0 > 0 }) else {
            throw TensorError(op, "input shape must be [N, C, ...] with positive sizes, got \(options.inputShape)")
        }
        // Traced twice on different inputs, like torch.jit.trace's check: a graph whose ops or
        // frozen constants change with the input would hold for the traced input only.
        let (graph, outputShape) = try trace(model, options: options, seed: 0)
        let (check, _) = try trace(model, options: options, seed: 1)
        guard graph.node.map(\.opType) == check.node.map(\.opType) else {
            throw TensorError(op, "the forward of \(model.typeName) runs different ops for different inputs (control flow on tensor values); a traced graph cannot hold it")
        }
        let checked = Dictionary(check.initializer.map { ($0.name, $0.rawData) }, uniquingKeysWith: { a, _ in a })
        for t in graph.initializer where checked[t.name] != t.rawData {
            let users = graph.node.filter { $0.input.contains(t.name) }.map { "\($0.name) (\($0.opType))" }
            throw TensorError(op, "tensor '\(t.name)' \(t.dims) used by \(users.joined(separator: ", ")) depends on the input but was computed by an op the exporter does not see; it would be frozen into the file as a constant")
        }

        var m = Onnx_ModelProto()
        m.irVersion = options.opset <= 17 ? 8 : (options.opset <= 20 ? 9 : 10)
        m.producerName = "sskd"
        m.producerVersion = "1"
        m.modelVersion = 1
        m.docString = "Exported by sskd from \(model.typeName); eval mode (dropout and stochastic depth are identities)."
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(options.opset)
        m.opsetImport = [opset]
        m.metadataProps = options.metadata.map { k, v in
            var e = Onnx_StringStringEntryProto()
            e.key = k; e.value = v
            return e
        }
        m.graph = graph
        let data: Data
        do { data = try m.serializedData() } catch {
            throw TensorError(op, "protobuf serialization failed: \(error)")
        }
        // Protobuf messages are limited to 2 GiB; larger models need external data files.
        guard data.count < Int(Int32.max) else {
            throw TensorError(op, "the model is \(data.count) bytes; ONNX files above 2 GiB need external data, which is not supported")
        }
        var counts: [String: Int] = [:]
        for n in graph.node { counts[n.opType, default: 0] += 1 }
        let summary = Summary(path: "", bytes: data.count, nodes: graph.node.count, initializers: graph.initializer.count,
                              opCounts: counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key },
                              outputShape: outputShape)
        return (data, summary)
    }

    /// One traced forward on a random input (uniform in [0, 1), from `seed`) as an ONNX graph.
    static func trace(_ model: Module, options: Options, seed: UInt64) throws -> (Onnx_GraphProto, [Int]) {
        let input = try Tensor.rand(options.inputShape, generator: Generator(seed: seed))
        let trace = ForwardTrace()
        let output: Tensor
        do { output = try ForwardTrace.run(model, input, into: trace) } catch {
            throw TensorError("export_onnx", "the traced forward on an input of shape \(options.inputShape) failed: \(error)")
        }
        var builder = GraphBuilder(model: model, trace: trace, input: input, options: options)
        let outName = try builder.value(of: output)
        return (try builder.graph(outputValue: outName, outputShape: output.shape), output.shape)
    }
}
