// State dicts: the ordered name -> tensor map that checkpoints and torchvision weights share.
// Keys are dotted module paths exactly as PyTorch spells them (`features.0.0.weight`,
// `features.0.1.running_mean`, `classifier.1.bias`).

import SSKDTensor

/// An ordered map from dotted names to tensors, with the dtype each entry is saved as
/// (`num_batches_tracked` is an int64 in PyTorch) and free-form string metadata.
public struct StateDict: Sequence {
    public private(set) var keys: [String] = []
    private var tensors: [String: Tensor] = [:]
    private var dtypes: [String: DType] = [:]
    /// Saved as safetensors `__metadata__` (checkpoint epoch, recipe, ...).
    public var metadata: [String: String] = [:]

    public init() {}

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public subscript(key: String) -> Tensor? { tensors[key] }

    /// The dtype `key` is saved as (F32 unless set otherwise).
    public func dtype(_ key: String) -> DType { dtypes[key] ?? .f32 }

    /// Inserts or replaces an entry (new keys go last).
    public mutating func set(_ key: String, _ tensor: Tensor, dtype: DType = .f32) {
        if tensors[key] == nil { keys.append(key) }
        tensors[key] = tensor
        dtypes[key] = dtype
    }

    @discardableResult
    public mutating func remove(_ key: String) -> Tensor? {
        guard let t = tensors.removeValue(forKey: key) else { return nil }
        dtypes[key] = nil
        keys.removeAll { $0 == key }
        return t
    }

    public func makeIterator() -> AnyIterator<(key: String, tensor: Tensor)> {
        var i = 0
        return AnyIterator {
            guard i < keys.count else { return nil }
            defer { i += 1 }
            let k = keys[i]
            return (k, tensors[k]!)
        }
    }

    /// A deep copy (own storage for every tensor), e.g. to keep the best weights of a run
    /// while training continues.
    public func copy() throws -> StateDict {
        var out = StateDict()
        out.metadata = metadata
        for k in keys { if let t = tensors[k] { out.set(k, try withNoGrad { try t.detach().clone() }, dtype: dtype(k)) } }
        return out
    }

    /// Total number of elements.
    public var elementCount: Int { tensors.values.reduce(0) { $0 + $1.count } }
}

/// What a load took and what it left: keys the model wanted but did not get, keys it did not
/// know, and keys whose shapes disagreed.
public struct LoadReport: CustomStringConvertible, Equatable {
    public var loaded: [String] = []
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var mismatched: [ShapeMismatch] = []

    public struct ShapeMismatch: Equatable, CustomStringConvertible {
        public let key: String
        public let expected: [Int]
        public let got: [Int]
        public var description: String { "\(key): checkpoint \(got) vs model \(expected)" }
    }

    /// Whether every key matched one to one.
    public var isComplete: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty }

    public var description: String {
        var parts = ["loaded \(loaded.count) tensors"]
        if !missing.isEmpty { parts.append("missing keys: " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty { parts.append("unexpected keys: " + unexpected.joined(separator: ", ")) }
        if !mismatched.isEmpty { parts.append("size mismatches: " + mismatched.map(\.description).joined(separator: "; ")) }
        return parts.joined(separator: "; ")
    }
}

/// A strict load found missing, unexpected or mis-shaped keys; nothing was modified.
public struct StateDictError: Error, CustomStringConvertible {
    /// Keys listed per kind before "... (N in all)".
    static let listed = 8
    public let report: LoadReport
    public let model: String
    public var description: String {
        // A wrong file can miss hundreds of keys: the first few of each kind say enough.
        func some(_ keys: [String]) -> String {
            keys.prefix(Self.listed).joined(separator: ", ") + (keys.count > Self.listed ? ", ... (\(keys.count) in all)" : "")
        }
        var lines = ["Error(s) in loading state dict for \(model):"]
        if !report.missing.isEmpty { lines.append("  missing keys: " + some(report.missing)) }
        if !report.unexpected.isEmpty { lines.append("  unexpected keys: " + some(report.unexpected)) }
        for m in report.mismatched.prefix(Self.listed) {
            lines.append("  size mismatch for \(m.key): copying a param with shape \(m.got) from checkpoint, the shape in current model is \(m.expected)")
        }
        if report.mismatched.count > Self.listed { lines.append("  ... \(report.mismatched.count) size mismatches in all") }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// The module's parameters and buffers under their dotted names, PyTorch's order.
    /// Tensors are shared with the module, not copied.
    public func stateDict() -> StateDict {
        var sd = StateDict()
        for (prefix, m) in namedModules() {
            let p = prefix.isEmpty ? "" : prefix + "."
            for (n, t) in m.localParameters where sd[p + n] == nil { sd.set(p + n, t) }
            for (n, t, dt) in m.localBuffers { sd.set(p + n, t, dtype: dt) }
        }
        return sd
    }

    /// Copies matching entries of `stateDict` into this module's tensors (in place).
    ///
    /// - strict: any missing, unexpected or mis-shaped key throws `StateDictError` listing all of
    ///   them, and nothing is modified.
    /// - non-strict: loads every key whose name and shape match and returns a report of the
    ///   rest (how an ImageNet MobileNetV2 goes into a 10-class model: `classifier.1.*` skipped).
    @discardableResult
    public func loadStateDict(_ stateDict: StateDict, strict: Bool = true) throws -> LoadReport {
        let own = self.stateDict()
        var report = LoadReport()
        var plan: [(Tensor, Tensor)] = []
        for key in own.keys {
            guard let dst = own[key] else { continue }
            guard let src = stateDict[key] else { report.missing.append(key); continue }
            // A 0-d counter saved as [1] (or vice versa) is the same value; anything else must match.
            guard src.shape == dst.shape || (src.count == 1 && dst.count == 1) else {
                report.mismatched.append(.init(key: key, expected: dst.shape, got: src.shape)); continue
            }
            plan.append((dst, src))
            report.loaded.append(key)
        }
        let ownKeys = Set(own.keys)
        report.unexpected = stateDict.keys.filter { !ownKeys.contains($0) }
        if strict && !report.isComplete { throw StateDictError(report: report, model: typeName) }
        withNoGrad { for (dst, src) in plan { dst.data.update(from: src.data, count: dst.count) } }
        return report
    }
}
