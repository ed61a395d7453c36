import Foundation
import SSKDNN
import SSKDOptim
import SSKDTensor

/// A training checkpoint: one safetensors file holding the model (`model.*`), the optimizer's
/// tensors (`optimizer.*`) and, as metadata, the optimizer's and scheduler's scalars, the RNG
/// state, the epoch and the early-stopping state. Written atomically.
public struct Checkpoint {
    public static let format = "sskd-checkpoint-1"

    /// The zero-based epoch this checkpoint ends.
    public var epoch: Int
    public var bestEpoch: Int?
    public var bestMetric: Double?
    public var model: StateDict
    public var optimizer: OptimizerState
    public var scheduler: [String: Double]
    public var rngState: [UInt64]
    public var extra: [String: String] = [:]

    /// Captures the state of a run after `epoch`.
    public init(epoch: Int, bestEpoch: Int?, bestMetric: Double?, model: Module, optimizer: Optimizer, scheduler: LRScheduler?) throws {
        self.epoch = epoch
        self.bestEpoch = bestEpoch
        self.bestMetric = bestMetric
        self.model = model.stateDict()
        self.optimizer = try optimizer.stateDict()
        self.scheduler = scheduler?.stateDict() ?? [:]
        self.rngState = Generator.default.state
    }

    public func write(to path: String) throws {
        var sd = StateDict()
        for (k, t) in model { sd.set("model." + k, t, dtype: model.dtype(k)) }
        optimizer.write(into: &sd, prefix: "optimizer.")
        for (k, v) in scheduler { sd.metadata["scheduler." + k] = v.description }
        sd.metadata["format"] = Checkpoint.format
        sd.metadata["epoch"] = String(epoch)
        if let b = bestEpoch { sd.metadata["best_epoch"] = String(b) }
        if let m = bestMetric { sd.metadata["best_metric"] = m.description }
        sd.metadata["rng"] = rngState.map(String.init).joined(separator: ",")
        for (k, v) in extra { sd.metadata["extra." + k] = v }
        try SafeTensors.write(sd, to: path)
    }

    /// Reads a checkpoint, checking its format; a damaged file is an error naming it.
    public static func read(_ path: String) throws -> Checkpoint {
        guard FileManager.default.fileExists(atPath: path) else { throw TrainError("checkpoint", "\(path) does not exist") }
        let data: Data
        do { data = try WholeFile.read(path) } catch { throw TrainError("checkpoint", "cannot read \(error)") }
        return try decode(data, path: path)
    }

    /// A checkpoint from the bytes of its file (`path` names it in errors): how ranks without the
    /// run directory get rank 0's checkpoint.
    public static func decode(_ data: Data, path: String) throws -> Checkpoint {
        let sd: StateDict
        do { sd = try SafeTensors.decode(data, path: path) } catch { throw TrainError("checkpoint", "\(path) is corrupt: \(error)") }
        guard sd.metadata["format"] == format else {
            throw TrainError("checkpoint", "\(path) is not an sskd checkpoint (metadata format is \(sd.metadata["format"].map { "'\($0)'" } ?? "missing"))")
        }
        func meta(_ k: String) throws -> String {
            guard let v = sd.metadata[k] else { throw TrainError("checkpoint", "\(path) lacks metadata '\(k)'") }
            return v
        }
        guard let epoch = Int(try meta("epoch")) else { throw TrainError("checkpoint", "\(path): metadata 'epoch' is not an integer") }
        let rng = try meta("rng").split(separator: ",").map { s -> UInt64 in
            guard let v = UInt64(s) else { throw TrainError("checkpoint", "\(path): metadata 'rng' is malformed") }
            return v
        }
        var model = StateDict()
        for (k, t) in sd where k.hasPrefix("model.") { model.set(String(k.dropFirst(6)), t, dtype: sd.dtype(k)) }
        var scheduler: [String: Double] = [:]
        for (k, v) in sd.metadata where k.hasPrefix("scheduler.") {
            guard let d = Double(v) else { throw TrainError("checkpoint", "\(path): metadata '\(k)' is not a number") }
            scheduler[String(k.dropFirst(10))] = d
        }
        var extra: [String: String] = [:]
        for (k, v) in sd.metadata where k.hasPrefix("extra.") { extra[String(k.dropFirst(6))] = v }
        var c = Checkpoint(epoch: epoch, model: model, optimizer: try OptimizerState(from: sd, prefix: "optimizer."), scheduler: scheduler, rngState: rng)
        c.bestEpoch = sd.metadata["best_epoch"].flatMap { Int($0) }
        c.bestMetric = sd.metadata["best_metric"].flatMap { Double($0) }
        c.extra = extra
        return c
    }

    /// A model's weights from `path`: the `model.*` tensors of a checkpoint (a run's
    /// best/last.safetensors), or the whole file when it is a plain state dict (`m:save`).
    public static func weights(_ path: String) throws -> StateDict {
        guard FileManager.default.fileExists(atPath: path) else { throw TrainError("weights", "\(path) does not exist") }
        let sd: StateDict
        do { sd = try SafeTensors.read(path) } catch { throw TrainError("weights", "\(path) is not a readable safetensors file: \(error)") }
        guard sd.metadata["format"] == format else { return sd }
        var model = StateDict()
        for (k, t) in sd where k.hasPrefix("model.") { model.set(String(k.dropFirst(6)), t, dtype: sd.dtype(k)) }
        return model
    }

    init(epoch: Int, model: StateDict, optimizer: OptimizerState, scheduler: [String: Double], rngState: [UInt64]) {
        self.epoch = epoch; self.model = model; self.optimizer = optimizer; self.scheduler = scheduler; self.rngState = rngState
    }

    /// Restores model, optimizer, scheduler and RNG.
    public func restore(model m: Module, optimizer o: Optimizer?, scheduler s: LRScheduler?) throws {
        try m.loadStateDict(model, strict: true)
        if let o { try o.loadStateDict(optimizer) }
        if let s, !scheduler.isEmpty { try s.loadStateDict(scheduler) }
        try Generator.default.setState(rngState)
    }
}
