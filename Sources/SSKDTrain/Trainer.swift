import Foundation
import SSKDData
import SSKDDist
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
    /// Gradient bytes per all-reduce when training over several ranks.
    public var bucketBytes = 4 << 20

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
///
/// Data-parallel over the ranks of `communicator` (DDP's scheme): `batchSize` is the global
/// batch, split into equal contiguous shards, one per rank; every rank starts from rank 0's
/// weights and buffers, runs forward and backward (the teacher too) on its shard, and the
/// gradients are averaged over the ranks (weighted by shard size) before the optimizer step, so
/// the ranks' weights stay identical and equal one process's with the same global batch up to
/// float rounding; the learning rate needs no change. Batch norm normalises with each rank's own
/// shard statistics (no SyncBatchNorm); its running statistics are rank 0's, broadcast before
/// every evaluation (DDP's broadcast_buffers). Evaluation is sharded and summed; metrics,
/// alpha, stopping and the best epoch are the same on every rank; rank 0 alone writes the run
/// directory. Before training the ranks compare their settings and data and refuse to start
/// when they differ. Any error on one rank ends every rank (MPI_Abort) with a message naming it.
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
    /// The ranks training together (`.local`: this process alone).
    public var communicator: Communicator = .local

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

    /// Runs `body`; over several ranks an error ends every rank, naming this one (the others
    /// would otherwise wait for it in a collective).
    private func endingAllRanksOnError<R>(_ body: () throws -> R) rethrows -> R {
        guard communicator.size > 1 else { return try body() }
        do { return try body() } catch { communicator.abort("\(error)") }
    }

    /// Continues the run saved in `run` (its last checkpoint and metrics), so that the remaining
    /// epochs equal those of an uninterrupted run with the same settings. Over several ranks,
    /// rank 0 reads the run directory and sends its contents to the others (which need none),
    /// and the run must have been trained on the same number of ranks.
    public func resume() throws {
        try endingAllRanksOnError {
            let comm = communicator
            // Rank 0 reads; every rank decodes the same bytes.
            var files: [[UInt8]] = [[], [], []]
            if comm.isMain {
                guard let run, let path = lastCheckpointPath else { throw TrainError("resume", "resuming needs a run directory") }
                guard FileManager.default.fileExists(atPath: path) else { throw TrainError("checkpoint", "\(path) does not exist") }
                do { files[0] = [UInt8](try WholeFile.read(path)) }
                catch { throw TrainError("checkpoint", "cannot read \(error)") }
                files[1] = [UInt8]((try? WholeFile.read(run.file("metrics.jsonl"))) ?? Data())
                if let bp = bestCheckpointPath, FileManager.default.fileExists(atPath: bp) {
                    files[2] = [UInt8](try WholeFile.read(bp))
                }
            }
            for i in files.indices { files[i] = try comm.broadcast(bytes: files[i], root: 0) }
            let where_ = run?.path ?? "rank 0's run directory"
            let lastPath = lastCheckpointPath ?? "\(where_)/last.safetensors"
            let ckpt = try Checkpoint.decode(Data(files[0]), path: lastPath)
            let ranks = ckpt.extra["ranks"].flatMap { Int($0) } ?? 1
            guard ranks == comm.size else {
                throw TrainError("resume", "\(lastPath) was trained on \(ranks) rank\(ranks == 1 ? "" : "s") and this run has \(comm.size); resume it with the same number (\(ranks == 1 ? "without mpirun" : "mpirun -np \(ranks)")): shards, batch-norm statistics and data order depend on it")
            }
            try ckpt.restore(model: model, optimizer: optimizer, scheduler: scheduler)
            let metricsPath = run?.file("metrics.jsonl") ?? "\(where_)/metrics.jsonl"
            let rows = try RunDirectory.parseRows(String(decoding: files[1], as: UTF8.self), path: metricsPath)
                .filter { ($0["epoch"]?.double).map { Int($0) <= ckpt.epoch } ?? false }
            guard rows.count == ckpt.epoch + 1 else {
                throw TrainError("resume", "\(metricsPath) has \(rows.count) rows up to epoch \(ckpt.epoch), expected \(ckpt.epoch + 1)")
            }
            if comm.isMain { try run?.setRows(rows) }
            history = rows
            startEpoch = ckpt.epoch + 1
            bestEpoch = ckpt.bestEpoch
            bestMetric = ckpt.bestMetric
            if bestEpoch != nil, !files[2].isEmpty {
                bestState = try Checkpoint.decode(Data(files[2]), path: bestCheckpointPath ?? "\(where_)/best.safetensors").model
            }
            resumed = true
        }
    }
    private var resumed = false

    private func isBetter(_ v: Double) -> Bool {
        guard v.isFinite else { return false }
        guard let b = bestMetric else { return true }
        return settings.metric == "accuracy" ? v > b : v < b
    }

    /// Runs the remaining epochs; returns why and how it ended.
    public func fit() throws -> TrainResult {
        try endingAllRanksOnError { try fitEpochs() }
    }

    private func fitEpochs() throws -> TrainResult {
        let t0 = Date()
        let s = settings
        let comm = communicator
        let parallel = comm.size > 1
        if parallel {
            guard s.batchSize % comm.size == 0 else {
                throw TrainError(s.name, "batch \(s.batchSize) is the global batch, split over \(comm.size) ranks: it must be a multiple of \(comm.size)")
            }
            try checkRanksAgree()
            if !resumed {
                // Every rank starts from rank 0's weights and buffers.
                try comm.broadcast(tensors: model.stateDict().map(\.tensor), root: 0)
            }
        }
        let shard = (index: comm.rank, count: comm.size)
        let progress = comm.isMain ? self.progress : Progress(live: false, out: FileHandle(forWritingAtPath: "/dev/null")!)
        let reducer = parallel ? GradientReducer(communicator: comm, parameters: optimizer.paramGroups.flatMap(\.params), bucketBytes: s.bucketBytes) : nil
        let loader = try DataLoader(train, batchSize: s.batchSize, shuffle: true, dropLast: s.dropLast, seed: s.seed, transform: augment, shard: shard)
        // Unlabelled images are read through an unlabeled view even when the caller hands in a
        // labelled dataset: the KD-only batches never see a label.
        let unlabeledLoader = try unlabeled.map {
            try DataLoader($0.isLabeled ? $0.unlabeled() : $0, batchSize: s.batchSize, shuffle: true, dropLast: true,
                           seed: s.seed ^ 0x554E_4C41_4245_4C, transform: augment, shard: shard)
        }
        if unlabeledLoader != nil && teacher == nil { throw TrainError(s.name, "unlabeled images need a teacher to distill from") }
        teacher?.eval()
        if let run, communicator.isMain {
            // What using the model needs later (sskd predict): architecture, input, classes, eval transform.
            let record = try ModelRecord(model: model, classNames: train.classNames, dataset: eval ?? train, evalTransform: evalTransform)
            try run.write(ModelRecord.fileName, try record.json())
        }
        // Over several ranks a Ctrl-C on any of them stops all at the same step: the flag
        // travels with the gradients.
        var stopRequested = false
        func interrupted() -> Bool { parallel ? stopRequested : Interrupt.requested }
        func optimize(_ batch: Batch, alpha a: Double, labelled: Bool, where place: String) throws -> (Double, Int) {
            let r = try step(batch, alpha: a, labelled: labelled, where: place, reducer: reducer)
            stopRequested = stopRequested || r.2
            return (r.0, r.1)
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
            var a: Double
            do { a = try alpha(e, history) } catch { throw TrainError(where_, "alpha schedule failed: \(error)") }
            // Identical on every rank even if a scripted schedule is not deterministic.
            if parallel { a = try comm.broadcastValue(a, root: 0) }
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
                if interrupted() { reason = .interrupted; break epochs }
                guard let batch = try labelledIt.next() else { break }
                let (lv, c) = try optimize(batch, alpha: a, labelled: true, where: "\(where_) batch \(b)")
                lossSum += lv * Double(batch.count); correct += c; seen += batch.count; images += batch.count
                // Interleave unlabeled batches evenly between labelled ones.
                while let it = unlabeledIt, u < (b + 1) * unlabeledBatches / max(labelledBatches, 1) {
                    if interrupted() { reason = .interrupted; break epochs }
                    guard let ub = try it.next() else { break }
                    _ = try optimize(ub, alpha: 1, labelled: false, where: "\(where_) unlabeled batch \(u)")
                    images += ub.count
                    u += 1
                }
                progress.batch("\(s.name) \(e + 1)/\(s.epochs)", b + 1, of: labelledBatches, images: images, loss: seen > 0 ? lossSum / Double(seen) : 0)
            }
            if !s.schedulerPerBatch { scheduler?.step() }
            if parallel {
                // The epoch's metrics over every rank's shard.
                var sums = [lossSum, Double(correct), Double(seen), Double(images)]
                try comm.allReduce(&sums, op: .sum)
                lossSum = sums[0]; correct = Int(sums[1]); seen = Int(sums[2]); images = Int(sums[3])
                // Rank 0's running statistics for evaluation and checkpoints.
                try comm.broadcast(tensors: model.namedBuffers().map(\.tensor), root: 0)
            }

            // Evaluate, log, checkpoint.
            var row = MetricRow([("epoch", .int(e)), ("alpha", .number(a)), ("lr", .number(lr)),
                                 ("train_loss", .number(seen > 0 ? lossSum / Double(seen) : .nan)),
                                 ("train_accuracy", .number(seen > 0 ? Double(correct) / Double(seen) : .nan))])
            var metricValue: Double? = nil
            if let eval {
                let ev = try evaluate(model, on: eval, transform: evalTransform, batchSize: s.evalBatchSize, communicator: comm)
                row["eval_loss"] = .number(ev.loss)
                row["eval_accuracy"] = .number(ev.accuracy)
                metricValue = s.metric == "accuracy" ? ev.accuracy : ev.loss
            }
            var secs = Date().timeIntervalSince(epochStart)
            // The slowest rank's time: every rank logs (and a time-based stopper sees) the same.
            if parallel { var t = [secs]; try comm.allReduce(&t, op: .max); secs = t[0] }
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
            var stop: Bool
            do { stop = try stopper?(history) ?? false } catch { throw TrainError(where_, "stopping rule failed: \(error)") }
            if parallel { stop = try comm.broadcastValue(stop ? 1 : 0, root: 0) != 0 }
            if stop && epoch < s.epochs { reason = .earlyStopped; break }
        }

        if s.restoreBest, reason != .interrupted, let best = bestState { try model.loadStateDict(best, strict: true) }
        var result = TrainResult(reason: reason, epochsRun: history.count, bestEpoch: bestEpoch, bestMetric: bestMetric,
                                 eval: nil, test: nil, seconds: Date().timeIntervalSince(t0), history: history)
        if reason != .interrupted {
            if let eval { result.eval = try evaluate(model, on: eval, transform: evalTransform, batchSize: s.evalBatchSize, communicator: comm) }
            if let test, test !== eval { result.test = try evaluate(model, on: test, transform: evalTransform, batchSize: s.evalBatchSize, communicator: comm) }
        }
        try writeSummary(result)
        return result
    }

    /// What every rank must agree on to train together: the settings, the model's architecture
    /// (not its weights: rank 0's are sent to all), the teacher's weights, the optimizer and
    /// schedule, the transforms, the scripted parts present, the resumed epoch and the data
    /// (a sampled fingerprint of each dataset). Ranks exchange these and every rank throws the
    /// same error listing what differs from rank 0.
    func rankAgreementFields() throws -> [(String, String)] {
        let s = settings
        var f: [(String, String)] = [
            ("name", s.name), ("epochs", "\(s.epochs)"), ("batch", "\(s.batchSize)"), ("eval_batch", "\(s.evalBatchSize)"),
            ("seed", "\(s.seed)"), ("drop_last", "\(s.dropLast)"), ("temperature", "\(s.temperature)"),
            ("unlabeled_ratio", "\(s.unlabeledRatio)"), ("metric", s.metric), ("limit_batches", s.limitBatches.map(String.init) ?? "none"),
            ("restore_best", "\(s.restoreBest)"), ("scheduler_per_batch", "\(s.schedulerPerBatch)"),
            ("start_epoch", "\(startEpoch)"),
        ]
        let arch = SHA256()
        for (k, t) in model.stateDict() { arch.update(field: k); arch.update(t.shape.count); for d in t.shape { arch.update(d) } }
        f.append(("model", "\(model.typeName) \(arch.hexDigest().prefix(16))"))
        f.append(("teacher", teacher.map { "\($0.typeName) \(Fingerprint.stateDict($0.stateDict()).prefix(16))" } ?? "none"))
        f.append(("optimizer", "\(type(of: optimizer)) " + optimizer.paramGroups.map {
            "lr \($0.lr) wd \($0.weightDecay) momentum \($0.momentum) betas \($0.beta1),\($0.beta2) eps \($0.eps) params \($0.params.count)"
        }.joined(separator: "; ")))
        f.append(("scheduler", scheduler.map { sch in sch.stateDict().sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") } ?? "none"))
        f.append(("augment", augment.map { "\($0)" } ?? "none"))
        f.append(("eval_transform", evalTransform.map { "\($0)" } ?? "none"))
        f.append(("scripted", "alpha, " + [loss != nil ? "loss" : nil, stopper != nil ? "stop" : nil].compactMap { $0 }.joined(separator: ", ")))
        for (k, d) in [("train", train), ("eval", eval), ("test", test), ("unlabeled", unlabeled)] as [(String, Dataset?)] {
            f.append(("\(k) data", try d.map { "\($0.count) images, \(try Fingerprint.datasetSample($0).prefix(16))" } ?? "none"))
        }
        return f
    }

    private func checkRanksAgree() throws {
        let comm = communicator
        let mine = try rankAgreementFields()
        let encoded = mine.map { $0.0 + "\u{1}" + $0.1 }.joined(separator: "\u{2}")
        let all = try comm.allGather(bytes: Array(encoded.utf8)).map { String(decoding: $0, as: UTF8.self) }
        var problems: [String] = []
        for r in 1..<all.count where all[r] != all[0] {
            let ref = all[0].split(separator: "\u{2}").map { $0.split(separator: "\u{1}", omittingEmptySubsequences: false) }
            let other = all[r].split(separator: "\u{2}").map { $0.split(separator: "\u{1}", omittingEmptySubsequences: false) }
            var diffs: [String] = []
            for (a, b) in zip(ref, other) where a != b {
                diffs.append("\(a.first ?? "?"): \(a.dropFirst().joined()) on rank 0, \(b.dropFirst().joined()) on rank \(r)")
            }
            if ref.count != other.count { diffs.append("the ranks run different sskd versions") }
            problems.append(contentsOf: diffs)
        }
        guard problems.isEmpty else {
            throw TrainError(settings.name, "the ranks' recipes disagree, so they cannot train together: " + problems.joined(separator: "; "))
        }
    }

    /// One optimisation step; returns this rank's shard's mean loss and correct predictions, and
    /// whether any rank asked to stop (Ctrl-C) before this step. Over several ranks the gradients
    /// are averaged through `reducer` between backward and the optimizer step; a rank whose shard
    /// is empty (a last batch smaller than the number of ranks) only joins the average.
    private func step(_ batch: Batch, alpha a: Double, labelled: Bool, where place: String, reducer: GradientReducer?) throws -> (Double, Int, Bool) {
        if batch.count == 0 {
            optimizer.zeroGrad()
            var control: [Float] = [Interrupt.requested ? 1 : 0]
            try reducer?.reduce(localCount: 0, globalCount: batch.globalCount, control: &control)
            try optimizer.step()
            if settings.schedulerPerBatch { scheduler?.step() }
            return (0, 0, control[0] > 0)
        }
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
        var control: [Float] = [Interrupt.requested ? 1 : 0]
        try reducer?.reduce(localCount: batch.count, globalCount: batch.globalCount, control: &control)
        try optimizer.step()
        if settings.schedulerPerBatch { scheduler?.step() }
        var correct = 0
        if let labels = batch.labels {
            let pred = try logits.detach().argmax(1)
            for (i, label) in labels.enumerated() where Int(pred.data[i]) == label { correct += 1 }
        }
        return (lv, correct, control[0] > 0)
    }

    private func persist(epoch e: Int, improved: Bool) throws {
        guard let run, communicator.isMain else { return }
        try run.append(history[history.count - 1])
        var ckpt = try Checkpoint(epoch: e, bestEpoch: bestEpoch, bestMetric: bestMetric, model: model, optimizer: optimizer, scheduler: scheduler)
        // Resuming needs the same number of ranks (shards and batch-norm statistics depend on it).
        ckpt.extra["ranks"] = String(communicator.size)
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
        guard let run, communicator.isMain else { return }
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
