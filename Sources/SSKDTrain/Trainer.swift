import Foundation
import SSKDData
import SSKDNN
import SSKDOptim
import SSKDTensor

/// Settings of one training run (a `fit` or a `distill`).
public struct TrainSettings {
    /// Shown in progress lines and summaries ("teacher", "student", "ss-kd").
    public var name = "model"
    public var epochs: Int
    public var batchSize = 32
    public var evalBatchSize = 256
    /// Seeds shuffling, augmentation and (through the caller) initialisation.
    public var seed: UInt64 = 0
    public var dropLast = false
    /// Distillation temperature T.
    public var temperature = 3.0
    /// Unlabeled batches per labelled batch when distilling with an unlabeled set.
    public var unlabeledRatio = 1.0
    /// The selection metric: "accuracy" (higher is better) or "loss" (lower is better), on the eval split.
    public var metric = "accuracy"
    /// At most this many training batches per epoch (smoke tests and tiny CI runs).
    public var limitBatches: Int? = nil
    /// Restore the best epoch's weights at the end.
    public var restoreBest = true
    /// Step the LR scheduler after every batch instead of every epoch (one-cycle).
    public var schedulerPerBatch = false

    public init(epochs: Int) { self.epochs = epochs }
}

/// Why a run ended.
public enum StopReason: String {
    case completed, earlyStopped = "early_stopped", interrupted
}

public struct TrainResult {
    public var reason: StopReason
    public var epochsRun: Int
    public var bestEpoch: Int?
    public var bestMetric: Double?
    /// The eval split, with the final (best) weights.
    public var eval: Evaluation?
    /// The test split when it differs from the eval split.
    public var test: Evaluation?
    public var seconds: Double
    public var history: [MetricRow]
}

/// A loss computed from (student logits, teacher logits or nil, labels or nil, alpha, temperature).
public typealias LossFunction = (Tensor, Tensor?, Tensor?, Double, Double) throws -> Tensor

/// The training loop: supervised `fit` when there is no teacher, SS-KD `distill` with one.
///
/// The loop is Swift; scripted parts (alpha schedule, loss, stopping rule, hooks) are closures
/// called at epoch boundaries, and once per batch only for a custom loss. Per epoch:
/// hooks -> alpha -> batches (forward, loss, backward, step) -> evaluation on the eval split ->
/// metrics files, checkpoints (last, best) and plot -> end hook -> stopping rule.
public final class Trainer {
    public let model: Module
    public let optimizer: Optimizer
    public let train: Dataset
    public var settings: TrainSettings

    public var teacher: Module?
    public var scheduler: LRScheduler?
    /// Evaluated after every epoch; selects the best epoch and feeds the stopping rule.
    public var eval: Dataset?
    /// Evaluated once at the end with the final weights (the clean protocol's test split).
    public var test: Dataset?
    /// Images without labels for distillation (the KD term alone).
    public var unlabeled: Dataset?
    public var augment: Transform?
    public var evalTransform: Transform?
    /// Alpha by zero-based epoch and the metric history so far.
    public var alpha: (Int, [MetricRow]) throws -> Double = { _, _ in 0 }
    /// A scripted loss; nil uses the native blend (CE for fit).
    public var loss: LossFunction?
    /// Returns true to stop after the epoch just logged.
    public var stopper: (([MetricRow]) throws -> Bool)?
    public var onEpochStart: ((Int) throws -> Void)?
    public var onEpochEnd: ((Int, MetricRow) throws -> Void)?
    /// Where metrics, checkpoints, plot and summary go (nil: nothing written).
    public var run: RunDirectory?
    /// Extra summary fields (e.g. which teacher was used).
    public var summaryExtra: [(String, MetricValue)] = []
    public var progress = Progress()

    public private(set) var history: [MetricRow] = []
    private var startEpoch = 0
    private var bestEpoch: Int? = nil
    private var bestMetric: Double? = nil
    private var bestState: StateDict? = nil

    public init(model: Module, optimizer: Optimizer, train: Dataset, settings: TrainSettings) throws {
        guard settings.epochs >= 0 else { throw TrainError("train", "epochs must be >= 0, got \(settings.epochs)") }
        guard settings.batchSize >= 1 else { throw TrainError("train", "batch size must be >= 1, got \(settings.batchSize)") }
        guard settings.metric == "accuracy" || settings.metric == "loss" else {
            throw TrainError("train", "metric must be 'accuracy' or 'loss', got '\(settings.metric)'")
        }
        guard train.isLabeled else { throw TrainError("train", "\(train.name) has no labels") }
        guard settings.unlabeledRatio.isFinite, settings.unlabeledRatio >= 0, settings.unlabeledRatio <= 1000 else {
            throw TrainError("train", "unlabeled_ratio must be in [0, 1000], got \(settings.unlabeledRatio)")
        }
        self.model = model
        self.optimizer = optimizer
        self.train = train
        self.settings = settings
    }

    var lastCheckpointPath: String? { run?.file("last.safetensors") }
    var bestCheckpointPath: String? { run?.file("best.safetensors") }

    /// Continues the run saved in `run` (its last checkpoint and metrics), so that the remaining
    /// epochs equal those of an uninterrupted run with the same settings.
    public func resume() throws {
        guard let run, let path = lastCheckpointPath else { throw TrainError("resume", "resuming needs a run directory") }
        let ckpt = try Checkpoint.read(path)
        try ckpt.restore(model: model, optimizer: optimizer, scheduler: scheduler)
        let rows = try run.loadRows().filter { ($0["epoch"]?.double).map { Int($0) <= ckpt.epoch } ?? false }
        guard rows.count == ckpt.epoch + 1 else {
            throw TrainError("resume", "\(run.file("metrics.jsonl")) has \(rows.count) rows up to epoch \(ckpt.epoch), expected \(ckpt.epoch + 1)")
        }
        try run.setRows(rows)
        history = rows
        startEpoch = ckpt.epoch + 1
        bestEpoch = ckpt.bestEpoch
        bestMetric = ckpt.bestMetric
        if bestEpoch != nil, let bp = bestCheckpointPath, FileManager.default.fileExists(atPath: bp) {
            bestState = try Checkpoint.read(bp).model
        }
    }

    private func isBetter(_ v: Double) -> Bool {
        guard v.isFinite else { return false }
        guard let b = bestMetric else { return true }
        return settings.metric == "accuracy" ? v > b : v < b
    }

    /// Runs the remaining epochs; returns why and how it ended.
    public func fit() throws -> TrainResult {
        let t0 = Date()
        let s = settings
        let loader = try DataLoader(train, batchSize: s.batchSize, shuffle: true, dropLast: s.dropLast, seed: s.seed, transform: augment)
        // Unlabelled images are read through an unlabeled view even when the caller hands in a
        // labelled dataset: the KD-only batches never see a label.
        let unlabeledLoader = try unlabeled.map {
            try DataLoader($0.isLabeled ? $0.unlabeled() : $0, batchSize: s.batchSize, shuffle: true, dropLast: true,
                           seed: s.seed ^ 0x554E_4C41_4245_4C, transform: augment)
        }
        if unlabeledLoader != nil && teacher == nil { throw TrainError(s.name, "unlabeled images need a teacher to distill from") }
        teacher?.eval()
        if let run {
            // What using the model needs later (sskd predict): architecture, input, classes, eval transform.
            let record = try ModelRecord(model: model, classNames: train.classNames, dataset: eval ?? train, evalTransform: evalTransform)
            try run.write(ModelRecord.fileName, try record.json())
        }
        var reason = StopReason.completed
        var epoch = startEpoch
        Interrupt.reset()  // a Ctrl-C before this run is not this run's
        Interrupt.install()
        defer { Interrupt.uninstall() }

        epochs: while epoch < s.epochs {
            let e = epoch
            let where_ = "\(s.name) epoch \(e)"
            do { try onEpochStart?(e) } catch { throw TrainError(where_, "epoch-start hook failed: \(error)") }
            let a: Double
            do { a = try alpha(e, history) } catch { throw TrainError(where_, "alpha schedule failed: \(error)") }
            guard a.isFinite, a >= 0, a <= 1 else { throw TrainError(where_, "alpha must be in [0, 1], got \(a)") }
            guard teacher != nil || a == 0 || loss != nil else { throw TrainError(where_, "alpha \(a) > 0 needs a teacher") }

            model.train()
            let lr = optimizer.paramGroups.first?.lr ?? 0
            let epochStart = Date()
            progress.beginEpoch()
            var lossSum = 0.0, correct = 0, seen = 0, images = 0
            let labelledBatches = min(loader.batchCount, s.limitBatches ?? .max)
            let unlabeledBatches = unlabeledLoader.map { min($0.batchCount, Int((s.unlabeledRatio * Double(labelledBatches)).rounded())) } ?? 0
            let labelledIt = loader.epoch(e)
            defer { labelledIt.close() }
            let unlabeledIt = unlabeledLoader?.epoch(e)
            defer { unlabeledIt?.close() }
            var u = 0
            for b in 0..<labelledBatches {
                if Interrupt.requested { reason = .interrupted; break epochs }
                guard let batch = try labelledIt.next() else { break }
                let (lv, c) = try step(batch, alpha: a, labelled: true, where: "\(where_) batch \(b)")
                lossSum += lv * Double(batch.count); correct += c; seen += batch.count; images += batch.count
                // Interleave unlabeled batches evenly between labelled ones.
                while let it = unlabeledIt, u < (b + 1) * unlabeledBatches / max(labelledBatches, 1) {
                    if Interrupt.requested { reason = .interrupted; break epochs }
                    guard let ub = try it.next() else { break }
                    _ = try step(ub, alpha: 1, labelled: false, where: "\(where_) unlabeled batch \(u)")
                    images += ub.count
                    u += 1
                }
                progress.batch("\(s.name) \(e + 1)/\(s.epochs)", b + 1, of: labelledBatches, images: images, loss: seen > 0 ? lossSum / Double(seen) : 0)
            }
            if !s.schedulerPerBatch { scheduler?.step() }

            // Evaluate, log, checkpoint.
            var row = MetricRow([("epoch", .int(e)), ("alpha", .number(a)), ("lr", .number(lr)),
                                 ("train_loss", .number(seen > 0 ? lossSum / Double(seen) : .nan)),
                                 ("train_accuracy", .number(seen > 0 ? Double(correct) / Double(seen) : .nan))])
            var metricValue: Double? = nil
            if let eval {
                let ev = try evaluate(model, on: eval, transform: evalTransform, batchSize: s.evalBatchSize)
                row["eval_loss"] = .number(ev.loss)
                row["eval_accuracy"] = .number(ev.accuracy)
                metricValue = s.metric == "accuracy" ? ev.accuracy : ev.loss
            }
            let secs = Date().timeIntervalSince(epochStart)
            row["seconds"] = .number((secs * 1000).rounded() / 1000)
            row["images_per_second"] = .number((Double(images) / max(secs, 1e-9)).rounded())
            let improved = metricValue.map(isBetter) ?? true
            if improved {
                bestEpoch = e
                bestMetric = metricValue
                bestState = try model.stateDict().cloned()
            }
            row["best"] = .int(improved ? 1 : 0)
            history.append(row)
            try persist(epoch: e, improved: improved)
            progress.line(Trainer.summaryLine(s.name, e, s.epochs, row))

            do { try onEpochEnd?(e, row) } catch { throw TrainError(where_, "epoch-end hook failed: \(error)") }
            epoch += 1
            let stop: Bool
            do { stop = try stopper?(history) ?? false } catch { throw TrainError(where_, "stopping rule failed: \(error)") }
            if stop && epoch < s.epochs { reason = .earlyStopped; break }
        }

        if s.restoreBest, reason != .interrupted, let best = bestState { try model.loadStateDict(best, strict: true) }
        var result = TrainResult(reason: reason, epochsRun: history.count, bestEpoch: bestEpoch, bestMetric: bestMetric,
                                 eval: nil, test: nil, seconds: Date().timeIntervalSince(t0), history: history)
        if reason != .interrupted {
            if let eval { result.eval = try evaluate(model, on: eval, transform: evalTransform, batchSize: s.evalBatchSize) }
            if let test, test !== eval { result.test = try evaluate(model, on: test, transform: evalTransform, batchSize: s.evalBatchSize) }
        }
        try writeSummary(result)
        return result
    }

    /// One optimisation step; returns the batch's mean loss and correct predictions.
    private func step(_ batch: Batch, alpha a: Double, labelled: Bool, where place: String) throws -> (Double, Int) {
        let x = batch.images
        let y = labelled ? try batch.labelTensor() : nil
        let t = try teacher.map { tm in try withNoGrad { try tm(x) } }
        let logits = try model(x)
        let l: Tensor
        if let loss {
            do { l = try loss(logits, t, y, a, settings.temperature) } catch { throw TrainError(place, "loss function failed: \(error)") }
            guard l.count == 1 else { throw TrainError(place, "the loss function returned shape \(l.shape), expected a scalar") }
        } else if teacher != nil {
            l = try Distillation.blend(student: logits, teacher: t, labels: y, alpha: a, temperature: settings.temperature)
        } else {
            guard let y else { throw TrainError(place, "no labels") }
            l = try logits.crossEntropy(y)
        }
        let lv = Double(try l.item())
        guard lv.isFinite else {
            throw TrainError(place, "loss is \(lv.isNaN ? "NaN" : (lv > 0 ? "+inf" : "-inf")); training stopped" + (lastCheckpointPath.map { ". The last good checkpoint is \($0)" } ?? ""))
        }
        optimizer.zeroGrad()
        guard l.requiresGrad else { throw TrainError(place, "the loss does not depend on the model's parameters") }
        try l.backward()
        try optimizer.step()
        if settings.schedulerPerBatch { scheduler?.step() }
        var correct = 0
        if let labels = batch.labels {
            let pred = try logits.detach().argmax(1)
            for (i, label) in labels.enumerated() where Int(pred.data[i]) == label { correct += 1 }
        }
        return (lv, correct)
    }

    private func persist(epoch e: Int, improved: Bool) throws {
        guard let run else { return }
        try run.append(history[history.count - 1])
        let ckpt = try Checkpoint(epoch: e, bestEpoch: bestEpoch, bestMetric: bestMetric, model: model, optimizer: optimizer, scheduler: scheduler)
        try ckpt.write(to: run.file("last.safetensors"))
        if improved { try ckpt.write(to: run.file("best.safetensors")) }
        try plot().writePNG(to: run.file("plot.png"))
    }

    /// Accuracy and loss per epoch, train and eval.
    public func plot() -> LinePlot {
        func col(_ k: String, scale: Double = 1) -> [Double?] { history.map { $0[k]?.double.map { $0 * scale } } }
        let p = LinePlot.palette
        return LinePlot(panels: [
            .init(title: "\(settings.name) accuracy (%)", series: [.init(name: "train", values: col("train_accuracy", scale: 100), color: p[0]),
                                                                     .init(name: "eval", values: col("eval_accuracy", scale: 100), color: p[1])]),
            .init(title: "\(settings.name) loss", series: [.init(name: "train", values: col("train_loss"), color: p[0]),
                                                           .init(name: "eval", values: col("eval_loss"), color: p[1])]),
        ])
    }

    private func writeSummary(_ r: TrainResult) throws {
        guard let run else { return }
        var fields: [(String, MetricValue)] = [("name", .string(settings.name)), ("status", .string(r.reason.rawValue)),
                                               ("epochs_run", .int(r.epochsRun)), ("seconds", .number((r.seconds * 1000).rounded() / 1000))]
        fields.append(("best_epoch", r.bestEpoch.map { .int($0) } ?? .null))
        fields.append(("best_" + settings.metric, r.bestMetric.map { .number($0) } ?? .null))
        if let ev = r.eval { fields.append(("eval_accuracy", .number(ev.accuracy))); fields.append(("eval_loss", .number(ev.loss))) }
        if let te = r.test { fields.append(("test_accuracy", .number(te.accuracy))); fields.append(("test_loss", .number(te.loss))) }
        fields += summaryExtra
        var json = MetricRow(fields).json
        if let final = r.test ?? r.eval {
            json.removeLast()
            json += ", \"per_class_accuracy\": [" + final.perClassAccuracy.map { $0.map { "\($0)" } ?? "null" }.joined(separator: ", ") + "]"
            json += ", \"confusion\": [" + final.confusion.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
            json += ", \"class_names\": [" + final.classNames.map(jsonString).joined(separator: ", ") + "]}"
        }
        try run.write("summary.json", text: json + "\n")
    }

    static func summaryLine(_ name: String, _ e: Int, _ total: Int, _ row: MetricRow) -> String {
        func f(_ k: String, _ pct: Bool = false) -> String {
            guard let v = row[k]?.double else { return "-" }
            return pct ? String(format: "%.2f%%", v * 100) : String(format: "%.4f", v)
        }
        var s = "\(name) epoch \(e + 1)/\(total)  loss \(f("train_loss"))  acc \(f("train_accuracy", true))"
        if row["eval_accuracy"] != nil { s += "  eval loss \(f("eval_loss"))  eval acc \(f("eval_accuracy", true))" }
        if let a = row["alpha"]?.double, a > 0 { s += String(format: "  alpha %.2f", a) }
        s += String(format: "  %.1fs", row["seconds"]?.double ?? 0)
        if row["best"] == .int(1) { s += "  *" }
        return s
    }
}

extension StateDict {
    /// A deep copy (the best epoch's weights must not follow later updates).
    public func cloned() throws -> StateDict {
        var out = StateDict()
        for (k, t) in self { out.set(k, try withNoGrad { try t.detach().clone() }, dtype: dtype(k)) }
        out.metadata = metadata
        return out
    }
}
