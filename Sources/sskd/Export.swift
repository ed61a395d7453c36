import ArgumentParser
import Foundation
import SSKDData
import SSKDExport
import SSKDLua
import SSKDNN
import SSKDTrain

/// `sskd export RUN_DIR | MODEL --weights W.safetensors [--input 3x96x96] --out model.onnx`: a trained model as ONNX.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Writes a trained model as an ONNX file (eval mode; checked against onnxruntime in the tests).",
        discussion: """
        RUN_DIR is a run directory of fit or distill: its model.json names the model, its input and its classes, and \
        its best weights are exported (the class names, input and eval transform go into the file's metadata). \
        MODEL is a constructor of the `models` namespace (efficientnet_b0, mobilenet_v2, ...) or a model_variants \
        plugin, with --weights (a state dict or a checkpoint) loaded strictly; the number of classes is read from \
        the weights' classifier unless --classes is given. The batch dimension is the symbol "batch" unless --static-batch.
          sskd export runs/quickstart/kd --out student.onnx
          sskd export efficientnet_b0 --weights best.safetensors --input 3x96x96 --out student.onnx
        """)

    @Argument(help: ArgumentHelp("A run directory, or a model name with --weights.", valueName: "RUN_DIR|MODEL"))
    var model: String

    @Option(help: ArgumentHelp("Trained weights for MODEL (safetensors state dict or checkpoint).", valueName: "FILE"))
    var weights: String?

    @Option(help: ArgumentHelp("Input size CxHxW (default: the run's, else 3x96x96).", valueName: "CxHxW"))
    var input: String?

    @Option(help: "Number of classes for MODEL (default: from the weights' classifier, else 10).")
    var classes: Int?

    @Option(help: ArgumentHelp("The ONNX file to write.", valueName: "FILE"))
    var out: String

    @Option(help: "ONNX opset (14...21).")
    var opset: Int = 17

    @Option(help: "Batch size of the traced input (and of the file with --static-batch).")
    var batch: Int = 1

    @Flag(help: "A fixed batch size instead of a dynamic one.")
    var staticBatch = false

    @Flag(help: "Fold each BatchNorm2d into the Conv2d before it.")
    var foldBatchnorm = false

    @Option(name: .customLong("plugins"), help: ArgumentHelp("An extra plugin folder (repeatable).", valueName: "DIR"))
    var pluginDirs: [String] = []

    func validate() throws {
        if let input { _ = try Self.shape(input) }
        guard batch > 0 else { throw ValidationError("--batch must be positive, got \(batch)") }
        if let classes, classes <= 0 { throw ValidationError("--classes must be positive, got \(classes)") }
    }

    static func shape(_ s: String) throws -> [Int] {
        guard let shape = ImageShape(parsing: s) else { throw ValidationError("--input expects CxHxW, e.g. 3x96x96, got '\(s)'") }
        return [shape.channels, shape.height, shape.width]
    }

    func run() throws {
        do {
            try export()
        } catch let e as ValidationError {
            throw e
        } catch {
            fputs("sskd export: \(error)\n", stderr)
            throw ExitCode(1)
        }
    }

    private func export() throws {
        let host = try LuaHost()
        for p in host.loadPlugins(from: LuaHost.pluginDirectories(extra: pluginDirs)) { fputs("sskd: plugin error: \(p)\n", stderr) }
        var isDir: ObjCBool = false
        let constructor: ModelConstructor
        var size = try input.map(Self.shape)
        var weightsFile = weights
        // The weights, read once (the class count comes from them when not given).
        var stateDict = try weights.map(Checkpoint.weights)
        var metadata: [(String, String)] = []
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue {
            let (record, runWeights) = try ModelRecord.inRun(model, missingHint: "(fit and distill write it): give a model name with --weights")
            let file = (model as NSString).appendingPathComponent(ModelRecord.fileName)
            guard let c = record.constructor else {
                throw TrainError(file, "the run's model (\(record.module)) was assembled by hand: give the name of a model_variants plugin that builds it, with --weights")
            }
            guard classes == nil || classes == record.classes.count else {
                throw TrainError(file, "--classes \(classes!) differs from the run's \(record.classes.count) classes")
            }
            constructor = c
            size = size ?? record.input
            if weightsFile == nil {
                weightsFile = runWeights
                stateDict = try Checkpoint.weights(runWeights)
            }
            let names = String(decoding: try JSONEncoder().encode(record.classes), as: UTF8.self)
            metadata = [("class_names", names), ("input", record.input.map(String.init).joined(separator: "x")),
                        ("eval_transform", record.evalTransformDescription), ("constructor", c.description)]
        } else {
            var count = classes ?? 10
            if classes == nil, let w = weights, let sd = stateDict {
                // The classifier's output size: the last Linear of the shipped heads.
                let heads = ["classifier.1.weight", "classifier.weight", "fc.weight", "head.weight"]
                guard let head = heads.lazy.compactMap({ sd[$0] }).first(where: { $0.dim == 2 }) else {
                    throw TrainError(w, "has none of \(heads.joined(separator: ", ")) to read the number of classes from: give --classes")
                }
                count = head.shape[0]
            }
            let c = size?[0] ?? 3
            constructor = ModelConstructor(try host.modelConstructorPath(model), options: ["classes": .int(count), "in_channels": .int(c)])
            metadata = [("constructor", constructor.description)]
        }
        let chw = size ?? [3, 96, 96]
        let m = try host.makeModel(constructor)
        if let w = weightsFile, let sd = stateDict {
            do { try m.loadStateDict(sd, strict: true) } catch {
                throw TrainError(w, "does not fit \(constructor): \(error)")
            }
            metadata.append(("weights", w))
        }
        let s = try ONNXExport.export(m, to: out, options: .init(inputShape: [batch] + chw, dynamicBatch: !staticBatch, opset: opset,
                                                                 metadata: metadata, foldBatchNorm: foldBatchnorm))
        let dims = { (d: [Int]) in "[" + ([staticBatch ? "\(d[0])" : "batch"] + d.dropFirst().map(String.init)).joined(separator: ", ") + "]" }
        print("wrote \(s.path): \(String(format: "%.2f", Double(s.bytes) / 1e6)) MB, \(s.nodes) nodes, \(s.initializers) initializers, "
              + "input \(dims([batch] + chw)), output \(dims(s.outputShape)); \(constructor)\(weightsFile.map { " with \($0)" } ?? ", untrained")")
        print("ops: " + s.opCounts.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
    }
}
