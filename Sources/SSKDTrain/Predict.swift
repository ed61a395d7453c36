// Inference on image files (`sskd predict`): decode, convert channels, the run's eval transform,
// batches through the eval forward without a graph, softmax, top-k. A file that fails at any
// step is reported and skipped; the others go on.

import Foundation
import SSKDData
import SSKDNN
import SSKDTensor

/// A class and its probability.
public struct ClassProbability: Equatable {
    public var index: Int
    public var name: String
    public var probability: Float
    public init(index: Int, name: String, probability: Float) { self.index = index; self.name = name; self.probability = probability }
}

/// One image's prediction.
public struct Prediction: Equatable {
    public var file: String
    /// The `top` most probable classes, most probable first (ties: lower index first).
    public var top: [ClassProbability]
    /// softmax(logits): one probability per class, in class order.
    public var probabilities: [Float]
    /// The predicted class (the most probable).
    public var best: ClassProbability { top[0] }
}

/// What a prediction run did: images predicted, files skipped (with why) and wall time (s).
public struct PredictionSummary {
    public var predicted = 0
    public var failed: [(file: String, reason: String)] = []
    public var seconds = 0.0
}

/// Classifies image files with a trained model.
///
/// Each file is decoded (PNG or JPEG, by signature), converted to the model's channels (gray ->
/// RGB repeats the plane, RGB -> gray is ITU-R 601-2 luma, as PIL's `convert`), put through the
/// eval transform, and, when that does not give the model's input size, resized and
/// centre-cropped to it (`ResizeCrop`). Batches of `batchSize` images run through the model in
/// eval mode without a graph (the fast inference path).
public final class Predictor {
    public let model: Module
    /// `[C, H, W]` the model takes.
    public let input: ImageShape
    public let classNames: [String]
    public let evalTransform: Transform?
    /// Classes reported per image (at most the number of classes).
    public var top = 5
    public var batchSize = 64
    /// Prefix of the lines written to `progress` (notes, skipped files).
    public var label = "predict"
    /// The bar (on a terminal, when there is more than one batch) and the note lines, on stderr.
    public var progress = Progress()

    private let fit: ResizeCrop

    /// Checks that the eval transform takes an image of `input`'s channels to them (a Normalize
    /// with the wrong number of means is an error now, not once per file).
    public init(model: Module, input: ImageShape, classNames: [String], evalTransform: Transform?) throws {
        guard [1, 3, 4].contains(input.channels) else { throw TrainError("predict", "the model's input must have 1, 3 or 4 channels, got \(input)") }
        guard !classNames.isEmpty else { throw TrainError("predict", "no class names") }
        self.model = model
        self.input = input
        self.classNames = classNames
        self.evalTransform = evalTransform
        self.fit = try ResizeCrop(height: input.height, width: input.width)
        let probe = try Image(shape: input, pixels: [Float](repeating: 0, count: try input.checkedCount(op: "predict")), range: 255)
        let out: Image
        do { out = try evalTransform?.apply(probe, generator: Generator(seed: 0)) ?? probe } catch {
            throw TrainError("predict", "the eval transform \(evalTransform!) fails on a \(input) image: \(error)")
        }
        guard out.channels == input.channels else {
            throw TrainError("predict", "the eval transform \(evalTransform!) turns \(input.channels) channels into \(out.channels)")
        }
    }

    /// An image ready for the model, and what was done to it on the way (for the notes).
    private struct Prepared {
        var image: Image
        var sourceChannels: Int
        /// The size the eval transform gave, when it was not the model's and `ResizeCrop` fixed it.
        var refitFrom: ImageShape?
    }

    private func prepare(_ path: String) throws -> Prepared {
        let bytes = try ImageCodec.decode(path: path)
        let converted = try bytes.converted(toChannels: input.channels)
        // Eval transforms are deterministic; a random one draws from a fixed stream.
        var img = try evalTransform?.apply(Image(converted), generator: Generator(seed: 0)) ?? TF.toFloat(Image(converted))
        var refit: ImageShape? = nil
        if img.height != input.height || img.width != input.width {
            refit = img.shape
            img = try fit.apply(img, generator: Generator(seed: 0))
        }
        guard img.shape == input else { throw DataError(path, "is \(img.shape) after the eval transform, the model takes \(input)") }
        return Prepared(image: img, sourceChannels: bytes.shape.channels, refitFrom: refit)
    }

    /// Predicts every file in order, calling `emit` for each one that could be read; the others
    /// are reported on `progress` and listed in the summary. Errors of the model itself (its
    /// output does not match the class names) end the run.
    public func run(_ files: [String], emit: (Prediction) throws -> Void) throws -> PredictionSummary {
        guard batchSize >= 1 else { throw TrainError("predict", "batch size must be >= 1, got \(batchSize)") }
        guard top >= 1 else { throw TrainError("predict", "top must be >= 1, got \(top)") }
        let t0 = Date()
        let wasTraining = model.training
        model.eval()
        defer { model.train(wasTraining) }
        var summary = PredictionSummary()
        var noted = Set<String>()
        func noteOnce(_ key: String, _ text: @autoclosure () -> String) {
            if noted.insert(key).inserted { progress.line("\(label): \(text())") }
        }
        let k = min(top, classNames.count)
        let batches = (files.count + batchSize - 1) / batchSize
        let showBar = batches > 1
        progress.beginEpoch()
        for b in 0..<batches {
            let names = Array(files[(b * batchSize)..<min(files.count, (b + 1) * batchSize)])
            var prepared = [Result<Prepared, Error>?](repeating: nil, count: names.count)
            prepared.withUnsafeMutableBufferPointer { out in
                let out = out
                parallelTasks(names.count) { i in out[i] = Result { try self.prepare(names[i]) } }
            }
            var good: [(file: String, image: Image)] = []
            for (file, result) in zip(names, prepared) {
                switch result! {
                case .failure(let error):
                    let reason = (error as? DataError).map { $0.what == file ? $0.message : $0.description } ?? "\(error)"
                    summary.failed.append((file, reason))
                    progress.line("\(label): skipping \(file): \(reason)")
                case .success(let p):
                    if p.sourceChannels != input.channels {
                        noteOnce("channels \(p.sourceChannels)", Predictor.conversionNote(from: p.sourceChannels, to: input.channels, first: file))
                    }
                    if let s = p.refitFrom {
                        noteOnce("size", "\(file) is \(s.height)x\(s.width) after the eval transform; such images are resized and center-cropped to \(input.height)x\(input.width), the model's input")
                    }
                    good.append((file, p.image))
                }
            }
            if !good.isEmpty {
                // [n, C, H, W] in [0, 1] (or normalised), as the data loader stacks a batch.
                let x = try Tensor.zeros([good.count, input.channels, input.height, input.width])
                for (i, g) in good.enumerated() {
                    let dst = x.data + i * input.count, r = g.image.range
                    g.image.pixels.withUnsafeBufferPointer { p in
                        if r == 1 { dst.update(from: p.baseAddress!, count: input.count) } else { for j in 0..<input.count { dst[j] = p[j] / r } }
                    }
                }
                let probs = try withNoGrad { () -> Tensor in
                    let logits = try model(x)
                    guard logits.shape == [good.count, classNames.count] else {
                        throw TrainError("predict", "the model's output is \(logits.shape) for \(good.count) images, expected [\(good.count), \(classNames.count)] (one logit per class)")
                    }
                    return try logits.softmax(1)
                }
                let all = probs.toArray()
                for (i, g) in good.enumerated() {
                    let row = Array(all[(i * classNames.count)..<((i + 1) * classNames.count)])
                    let order = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
                    let topK = order.prefix(k).map { ClassProbability(index: $0, name: classNames[$0], probability: row[$0]) }
                    try emit(Prediction(file: g.file, top: topK, probabilities: row))
                }
                summary.predicted += good.count
            }
            if showBar { progress.batch(label, b + 1, of: batches, images: summary.predicted + summary.failed.count, loss: nil) }
        }
        progress.clear()
        summary.seconds = Date().timeIntervalSince(t0)
        return summary
    }

    /// The line saying how images of `from` channels become the model's `to`.
    static func conversionNote(from: Int, to: Int, first file: String) -> String {
        let kind = [1: "grayscale", 3: "RGB", 4: "RGBA"][from] ?? "\(from)-channel"
        let how: String
        switch (from, to) {
        case (1, _): how = "by repeating the gray plane"
        case (_, 1): how = "by luminance (ITU-R 601-2: 0.299 R + 0.587 G + 0.114 B)"
        case (4, 3): how = "by dropping alpha"
        default: how = "by adding an opaque alpha plane"
        }
        return "\(kind) images are converted to \(to) channel\(to == 1 ? "" : "s") \(how), as the model expects (first: \(file))"
    }
}

/// How predictions are written: `csv` (a header, then a row per image) or `jsonl` (a JSON
/// object per line).
public enum PredictionFormat: String, CaseIterable, Sendable {
    case csv, jsonl

    /// The CSV header for `k` top classes: `file,class,probability,top1_class,top1_probability,...`.
    public func header(top k: Int) -> String? {
        guard self == .csv else { return nil }
        return (["file", "class", "probability"] + (1...max(k, 1)).flatMap { ["top\($0)_class", "top\($0)_probability"] }).joined(separator: ",")
    }

    /// One image's line (without the newline). Probabilities print as the shortest decimal that
    /// reads back as the same Float (a NaN from NaN logits: `nan` in CSV, `null` in JSON).
    public func line(_ p: Prediction) -> String {
        switch self {
        case .csv:
            func number(_ v: Float) -> String { v.isFinite ? "\(v)" : "nan" }
            let fields = [MetricValue.string(p.file).csv, MetricValue.string(p.best.name).csv, number(p.best.probability)]
                + p.top.flatMap { [MetricValue.string($0.name).csv, number($0.probability)] }
            return fields.joined(separator: ",")
        case .jsonl:
            func number(_ v: Float) -> String { v.isFinite ? "\(v)" : "null" }
            let top = p.top.map { "{\"class\": \(jsonString($0.name)), \"index\": \($0.index), \"probability\": \(number($0.probability))}" }
            return "{\"file\": \(jsonString(p.file)), \"class\": \(jsonString(p.best.name)), \"index\": \(p.best.index), "
                + "\"probability\": \(number(p.best.probability)), \"top\": [\(top.joined(separator: ", "))]}"
        }
    }
}
