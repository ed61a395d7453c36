import Foundation
import SSKDData
import SSKDNN
import SSKDTensor

/// `model.json` in a run directory: what using the trained model needs without its recipe (the
/// architecture by constructor name, the input it was evaluated on, the class names and the eval
/// transform). `fit` and `distill` write it when a run starts; `sskd predict RUN` reads it.
///
///     {"format": "sskd-model-1", "model": {"name": "model_variants.small_cnn", "options": {"classes": 2}},
///      "module": "Sequential", "parameters": 24866, "input": [3, 12, 12], "classes": ["cat", "dog"],
///      "eval_transform": [{"op": "resize", "height": 12, "width": 12, "antialias": true}],
///      "eval_transform_description": "Resize(12x12)", "weights": "best.safetensors"}
public struct ModelRecord: Codable, Equatable {
    public static let fileName = "model.json"
    public static let currentFormat = "sskd-model-1"

    public var format: String
    /// How to build the architecture again; nil when the model was assembled by hand (then a
    /// user names a constructor that builds it: `sskd predict --model NAME`).
    public var constructor: ModelConstructor?
    /// The root module's type (`EfficientNet`, `Sequential`), for messages.
    public var module: String
    /// Parameter elements of the trained model (a rebuilt one must have as many).
    public var parameters: Int
    /// `[C, H, W]` of an eval image after the eval transform: what the model was evaluated on.
    public var input: [Int]
    /// Class names in label order (the model's outputs).
    public var classes: [String]
    /// The eval transform as data (empty: none, images scaled to [0, 1]); nil when it cannot be
    /// rebuilt from data (a random or scripted transform).
    public var evalTransform: [TransformSpec]?
    /// The eval transform as printed (`Compose(Resize(96), Normalize(...))`), for messages.
    public var evalTransformDescription: String
    /// The weights within the run directory (a checkpoint: `model.*` tensors).
    public var weights: String

    enum CodingKeys: String, CodingKey {
        case format, constructor = "model", module, parameters, input, classes
        case evalTransform = "eval_transform", evalTransformDescription = "eval_transform_description", weights
    }

    public init(format: String = ModelRecord.currentFormat, constructor: ModelConstructor?, module: String, parameters: Int,
                input: [Int], classes: [String], evalTransform: [TransformSpec]?, evalTransformDescription: String,
                weights: String = "best.safetensors") {
        self.format = format; self.constructor = constructor; self.module = module; self.parameters = parameters
        self.input = input; self.classes = classes; self.evalTransform = evalTransform
        self.evalTransformDescription = evalTransformDescription; self.weights = weights
    }

    /// The record of `model` with outputs `classNames`, evaluated on `dataset` through
    /// `evalTransform`: the input shape is that of `dataset`'s first image after the transform.
    public init(model: Module, classNames: [String], dataset: Dataset, evalTransform: Transform?) throws {
        guard dataset.count > 0 else { throw TrainError("model.json", "\(dataset.name) has no images to take the input shape from") }
        let first = Image(try dataset.image(at: 0))
        // Eval transforms are deterministic; a random one draws from a fixed stream here.
        let shape = try evalTransform.map { try $0.apply(first, generator: Generator(seed: 0)).shape } ?? first.shape
        self.init(constructor: model.constructor, module: model.typeName, parameters: model.parameterCount,
                  input: [shape.channels, shape.height, shape.width], classes: classNames,
                  evalTransform: evalTransform.map { $0.specs } ?? [],
                  evalTransformDescription: evalTransform?.description ?? "none (images scaled to [0, 1])")
    }

    /// The record as pretty-printed JSON with sorted keys.
    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try enc.encode(self)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// Reads and checks `model.json` at `path`; every problem is an error naming the file.
    public static func read(_ path: String) throws -> ModelRecord {
        guard FileManager.default.fileExists(atPath: path) else { throw TrainError(path, "not found") }
        let data: Data
        do { data = try WholeFile.read(path) } catch let e as WholeFile.Failure { throw TrainError(path, e.message) }
        let r: ModelRecord
        do { r = try JSONDecoder().decode(ModelRecord.self, from: data) } catch {
            throw TrainError(path, "not a valid model record: \(describe(error))")
        }
        guard r.format == currentFormat else { throw TrainError(path, "format '\(r.format)' is not '\(currentFormat)'") }
        guard r.input.count == 3, r.input.allSatisfy({ $0 >= 1 && $0 <= TF.maxImageSize }) else {
            throw TrainError(path, "input must be [C, H, W] with each in 1...\(TF.maxImageSize), got \(r.input)")
        }
        guard !r.classes.isEmpty else { throw TrainError(path, "no class names") }
        return r
    }

    /// A decoding error in a sentence (the field path and what was wrong).
    static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String { keys.isEmpty ? "the top level" : "'" + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") + "'" }
        switch error as? DecodingError {
        case .keyNotFound(let k, let ctx)?: return "field '\(k.stringValue)' is missing at \(path(ctx.codingPath))"
        case .typeMismatch(let t, let ctx)?: return "\(path(ctx.codingPath)) is not a \(t)"
        case .valueNotFound(let t, let ctx)?: return "\(path(ctx.codingPath)) is null, expected a \(t)"
        case .dataCorrupted(let ctx)?: return ctx.codingPath.isEmpty ? "malformed JSON" : "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        default: return "\(error)"
        }
    }
}

extension ModelRecord {
    /// A run directory's record and the weights to use: its `weights` file (the best epoch), or
    /// `last.safetensors` when the run has not written that. `missingHint` ends the error for a
    /// run without model.json (what the caller can give instead).
    public static func inRun(_ dir: String, missingHint: String) throws -> (record: ModelRecord, weights: String) {
        let file = (dir as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file) else { throw TrainError(dir, "no \(fileName) \(missingHint)") }
        let r = try read(file)
        let best = (dir as NSString).appendingPathComponent(r.weights), last = (dir as NSString).appendingPathComponent("last.safetensors")
        guard let w = [best, last].first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw TrainError(dir, "no weights: neither \(r.weights) nor last.safetensors (the run has not finished an epoch)")
        }
        return (r, w)
    }
}
