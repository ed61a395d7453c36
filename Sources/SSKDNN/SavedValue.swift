// torch.save / torch.load's file: a value (a tensor, or nested tables of tensors and plain values)
// as one safetensors file that any safetensors reader opens.
//
// Tensors are F32 entries named by their place in the value, keys joined with "." (`model.weight`,
// `layers.1`: Lua's own keys, so arrays count from 1); a tensor saved on its own is `tensor`.
// The value, with each tensor replaced by its entry name, is JSON in the `__metadata__` entry
// `sskd.torch.save`:
//
//     {"version": 1, "value": NODE}
//     NODE: {"tensor": "entry"} (+ "requires_grad": true)   {"integer": 42}   {"boolean": true}
//           {"number": 0.5} ("inf", "-inf", "nan" as strings)   {"string": "text"}
//           {"bytes": "<base64>"} (a Lua string that is not UTF-8)
//           {"array": [NODE, ...]} (a Lua sequence t[1..n])
//           {"table": [[KEY, NODE], ...]} (any other table; KEY a scalar NODE, entries sorted by key)
//
// Entry names are labels for other readers only: the description says which entry goes where,
// so keys containing "." and numeric keys round-trip exactly (a name taken twice, `{["a.b"] = x,
// a = {b = y}}`, gets a "#2" suffix). A tensor that appears twice is stored once.

import Foundation
import SSKDTensor

/// A value `torch.save` writes: a tensor, a plain value, or a table of them (Lua's data model).
public indirect enum SavedValue {
    case tensor(Tensor)
    case integer(Int64)
    case number(Double)
    case string(String)
    /// A string whose bytes are not UTF-8 (Lua strings are byte strings).
    case bytes([UInt8])
    case boolean(Bool)
    /// A Lua sequence: `t[1] ... t[n]`.
    case array([SavedValue])
    /// Any other table. Keys are scalars: integer, number (not NaN), string, bytes or boolean.
    case table([(key: SavedValue, value: SavedValue)])
}

/// What `SafeTensors.load` found in a file.
public struct LoadedValue {
    /// The value `torch.save` wrote; for any other safetensors file a `.table` of its tensors by
    /// entry name (what `safetensors.torch.load_file` returns).
    public var value: SavedValue
    /// Whether the file was written by `torch.save` (the value is restored exactly).
    public var isSavedValue: Bool
    /// The file's `__metadata__`, without sskd's own description of the value.
    public var metadata: [String: String]
    /// Each entry's dtype in the file (every tensor is Float32 now).
    public var fileDTypes: [String: DType]
    /// Entries whose values did not all convert to Float32 exactly, with how many did not.
    public var inexactCounts: [String: Int]
}

extension SafeTensors {
    /// The `__metadata__` entry that holds the description of a saved value.
    public static let savedValueKey = "sskd.torch.save"
    /// Metadata keys starting with this are sskd's own.
    public static let reservedMetadataPrefix = "sskd."
    /// Deepest nesting of tables `save` and `load` accept (a deeper value is usually a cycle made
    /// by hand; it also bounds recursion when reading a file someone else wrote).
    public static let maxSavedDepth = 100
    static let savedVersion = 1

    // MARK: Saving

    /// Writes `value` atomically (a temporary file beside `path`, renamed over it) with the
    /// caller's string `metadata`; keys starting with "sskd." are reserved.
    public static func save(_ value: SavedValue, to path: String, metadata: [String: String] = [:]) throws {
        try write(try stateDict(saving: value, metadata: metadata, path: path), to: path)
    }

    /// The state dict that holds `value`: its tensors by name, its description in the metadata.
    /// `path` only labels errors.
    public static func stateDict(saving value: SavedValue, metadata: [String: String] = [:], path: String = "<write>") throws -> StateDict {
        if let k = metadata.keys.sorted().first(where: { $0.hasPrefix(reservedMetadataPrefix) }) {
            throw SafeTensorsError(path, "metadata key '\(k)' is reserved (keys starting with '\(reservedMetadataPrefix)' are sskd's)")
        }
        var writer = SavedValueWriter(path: path)
        let node = try writer.node(value, name: nil, depth: 0)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try encoder.encode(SavedFile(version: savedVersion, value: node))
        var sd = writer.stateDict
        sd.metadata = metadata
        sd.metadata[savedValueKey] = String(decoding: json, as: UTF8.self)
        return sd
    }

    // MARK: Loading

    /// Reads a file `save` wrote (the exact value back) or any other safetensors file (a table
    /// of its tensors by name); every tensor is converted to Float32 and `fileDTypes` /
    /// `inexactCounts` say what that did. Errors name the file and what is wrong.
    public static func load(_ path: String) throws -> LoadedValue {
        try loadedValue(readContents(path), path: path)
    }

    /// `load` on bytes already in memory; `path` only labels errors.
    public static func decodeLoaded(_ data: Data, path: String = "<memory>") throws -> LoadedValue {
        try loadedValue(decodeContents(data, path: path), path: path)
    }

    static func loadedValue(_ contents: SafeTensorsContents, path: String) throws -> LoadedValue {
        let sd = contents.stateDict
        var metadata = sd.metadata
        guard let description = metadata.removeValue(forKey: savedValueKey) else {
            let value = SavedValue.table(sd.map { (key: SavedValue.string($0.key), value: SavedValue.tensor($0.tensor)) })
            return LoadedValue(value: value, isSavedValue: false, metadata: metadata,
                               fileDTypes: contents.fileDTypes, inexactCounts: contents.inexactCounts)
        }
        let what = "metadata '\(savedValueKey)' (sskd's description of the saved value)"
        let file: SavedFile
        let json = Data(description.utf8)
        do {
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            file = try decoder.decode(SavedFile.self, from: json)
        } catch {
            // JSONDecoder says only "not valid JSON"; JSONSerialization says where and why.
            var reason = describe(error)
            do { _ = try JSONSerialization.jsonObject(with: json) }
            catch { reason = "not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error.localizedDescription))" }
            throw SafeTensorsError(path, "\(what) is malformed: \(reason)")
        }
        guard file.version == savedVersion else {
            throw SafeTensorsError(path, "\(what) has version \(file.version); this sskd reads version \(savedVersion) (written by a newer sskd?)")
        }
        var reader = SavedValueReader(stateDict: sd, path: path, what: what)
        let value = try reader.value(file.value, at: "value", depth: 0)
        if let stray = sd.keys.first(where: { !reader.used.contains($0) }) {
            throw SafeTensorsError(path, "tensor '\(stray)' is not part of the value \(what) describes (was the file changed by another tool?)")
        }
        return LoadedValue(value: value, isSavedValue: true, metadata: metadata,
                           fileDTypes: contents.fileDTypes, inexactCounts: contents.inexactCounts)
    }

    /// A decoding error in one line: what is wrong and where in the JSON.
    private static func describe(_ error: Error) -> String {
        func at(_ path: [CodingKey]) -> String {
            path.isEmpty ? "" : " at " + path.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
        }
        switch error {
        case let DecodingError.dataCorrupted(c): return c.debugDescription + at(c.codingPath)
        case let DecodingError.keyNotFound(k, c): return "missing '\(k.stringValue)'" + at(c.codingPath)
        case let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c): return c.debugDescription + at(c.codingPath)
        default: return "\(error)"
        }
    }
}

// MARK: - The JSON description

/// `{"version": 1, "value": NODE}`.
private struct SavedFile: Codable {
    var version: Int
    var value: SavedNode
}

/// One value of the description: an object with exactly one of the keys below.
private indirect enum SavedNode: Codable {
    case tensor(String, requiresGrad: Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case bytes(String)
    case boolean(Bool)
    case array([SavedNode])
    case table([[SavedNode]])

    enum CodingKeys: String, CodingKey {
        case tensor, requires_grad, integer, number, string, bytes, boolean, array, table
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kinds = c.allKeys.filter { $0 != .requires_grad }
        guard kinds.count == 1, let kind = kinds.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "a value needs exactly one of tensor, integer, number, string, bytes, boolean, array, table (got \(c.allKeys.map(\.stringValue).sorted()))"))
        }
        switch kind {
        case .tensor: self = .tensor(try c.decode(String.self, forKey: .tensor),
                                     requiresGrad: try c.decodeIfPresent(Bool.self, forKey: .requires_grad) ?? false)
        case .integer: self = .integer(try c.decode(Int64.self, forKey: .integer))
        case .number: self = .number(try c.decode(Double.self, forKey: .number))
        case .string: self = .string(try c.decode(String.self, forKey: .string))
        case .bytes: self = .bytes(try c.decode(String.self, forKey: .bytes))
        case .boolean: self = .boolean(try c.decode(Bool.self, forKey: .boolean))
        case .array: self = .array(try c.decode([SavedNode].self, forKey: .array))
        case .table, .requires_grad: self = .table(try c.decode([[SavedNode]].self, forKey: .table))
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .tensor(name, rg):
            try c.encode(name, forKey: .tensor)
            if rg { try c.encode(true, forKey: .requires_grad) }
        case let .integer(v): try c.encode(v, forKey: .integer)
        case let .number(v): try c.encode(v, forKey: .number)
        case let .string(v): try c.encode(v, forKey: .string)
        case let .bytes(v): try c.encode(v, forKey: .bytes)
        case let .boolean(v): try c.encode(v, forKey: .boolean)
        case let .array(v): try c.encode(v, forKey: .array)
        case let .table(v): try c.encode(v, forKey: .table)
        }
    }
}

/// A table key normalised as Lua compares keys (a float with an integral value is that integer;
/// a string is its bytes), to find duplicates.
private enum KeyIdentity: Hashable {
    case integer(Int64), number(UInt64), bytes([UInt8]), boolean(Bool)

    init?(_ v: SavedValue) {
        switch v {
        case let .integer(i): self = .integer(i)
        case let .number(d):
            if d.isNaN { return nil }
            if let i = Int64(exactly: d) { self = .integer(i) } else { self = .number((d == 0 ? 0 : d).bitPattern) }
        case let .string(s): self = .bytes(Array(s.utf8))
        case let .bytes(b): self = .bytes(b)
        case let .boolean(b): self = .boolean(b)
        default: return nil
        }
    }
}

/// Walks a value: tensors into a state dict under unique names, the rest into nodes.
private struct SavedValueWriter {
    let path: String
    var stateDict = StateDict()
    /// Names already given, and the name of every tensor already stored (stored once).
    var taken: Set<String> = []
    var names: [ObjectIdentifier: String] = [:]

    init(path: String) { self.path = path }

    mutating func node(_ v: SavedValue, name: String?, depth: Int) throws -> SavedNode {
        switch v {
        case let .tensor(t):
            if let existing = names[ObjectIdentifier(t)] { return .tensor(existing, requiresGrad: t.requiresGrad) }
            let entry = unique(name ?? "tensor")
            stateDict.set(entry, t)
            names[ObjectIdentifier(t)] = entry
            return .tensor(entry, requiresGrad: t.requiresGrad)
        case let .integer(i): return .integer(i)
        case let .number(d): return .number(d)
        case let .string(s): return .string(s)
        case let .bytes(b): return .bytes(Data(b).base64EncodedString())
        case let .boolean(b): return .boolean(b)
        case let .array(items):
            guard depth < SafeTensors.maxSavedDepth else { throw tooDeep() }
            return .array(try items.enumerated().map { i, item in try node(item, name: child(name, String(i + 1)), depth: depth + 1) })
        case let .table(entries):
            guard depth < SafeTensors.maxSavedDepth else { throw tooDeep() }
            var seen: Set<KeyIdentity> = []
            for e in entries {
                guard let id = KeyIdentity(e.key) else { throw SafeTensorsError(path, "a table key must be a number (not NaN), string or boolean") }
                guard seen.insert(id).inserted else { throw SafeTensorsError(path, "a table has the key \(Self.label(e.key)) twice") }
            }
            // Sorted so that the same table always gives the same file (Lua's pairs order is not stable).
            return .table(try entries.sorted { Self.precedes($0.key, $1.key) }.map { e in
                [try node(e.key, name: nil, depth: depth + 1), try node(e.value, name: child(name, Self.label(e.key)), depth: depth + 1)]
            })
        }
    }

    func tooDeep() -> SafeTensorsError {
        SafeTensorsError(path, "the value nests more than \(SafeTensors.maxSavedDepth) tables deep")
    }

    func child(_ parent: String?, _ key: String) -> String { parent.map { $0 + "." + key } ?? key }

    mutating func unique(_ base: String) -> String {
        var name = base
        var n = 1
        while taken.contains(name) || name == "__metadata__" { n += 1; name = "\(base)#\(n)" }
        taken.insert(name)
        return name
    }

    /// A key as it appears in entry names.
    static func label(_ key: SavedValue) -> String {
        switch key {
        case let .integer(i): return String(i)
        case let .number(d): return String(d)
        case let .string(s): return s
        case let .bytes(b): return String(decoding: b, as: UTF8.self)
        case let .boolean(b): return b ? "true" : "false"
        default: return "?"
        }
    }

    /// Keys in a fixed order: booleans, then numbers by value, then strings by their bytes.
    static func precedes(_ a: SavedValue, _ b: SavedValue) -> Bool {
        func rank(_ v: SavedValue) -> Int {
            switch v { case .boolean: return 0; case .integer, .number: return 1; default: return 2 }
        }
        let ra = rank(a), rb = rank(b)
        if ra != rb { return ra < rb }
        switch (a, b) {
        case let (.boolean(x), .boolean(y)): return !x && y
        case let (.integer(x), .integer(y)): return x < y
        case let (.number(x), .number(y)): return x < y
        case let (.integer(x), .number(y)): return Double(x) < y || (Double(x) == y)   // integer first on a tie
        case let (.number(x), .integer(y)): return x < Double(y)
        default:
            let bytes = { (v: SavedValue) -> [UInt8] in if case let .bytes(b) = v { return b }; if case let .string(s) = v { return Array(s.utf8) }; return [] }
            return bytes(a).lexicographicallyPrecedes(bytes(b))
        }
    }
}

/// Rebuilds a value from its description, checking it against the file's tensors.
private struct SavedValueReader {
    let stateDict: StateDict
    let path: String
    let what: String
    var used: Set<String> = []

    init(stateDict: StateDict, path: String, what: String) {
        self.stateDict = stateDict
        self.path = path
        self.what = what
    }

    func bad(_ at: String, _ message: String) -> SafeTensorsError { SafeTensorsError(path, "\(what): \(at) \(message)") }

    mutating func value(_ node: SavedNode, at: String, depth: Int) throws -> SavedValue {
        switch node {
        case let .tensor(name, rg):
            guard let t = stateDict[name] else { throw bad(at, "names tensor '\(name)', which the file does not hold") }
            used.insert(name)
            if rg { t.requiresGrad = true }
            return .tensor(t)
        case let .integer(i): return .integer(i)
        case let .number(d): return .number(d)
        case let .string(s): return .string(s)
        case let .bytes(s):
            guard let d = Data(base64Encoded: s) else { throw bad(at, "is bytes that are not base64") }
            return .bytes([UInt8](d))
        case let .boolean(b): return .boolean(b)
        case let .array(items):
            guard depth < SafeTensors.maxSavedDepth else { throw bad(at, "nests more than \(SafeTensors.maxSavedDepth) tables deep") }
            return .array(try items.enumerated().map { i, item in try value(item, at: "\(at)[\(i + 1)]", depth: depth + 1) })
        case let .table(pairs):
            guard depth < SafeTensors.maxSavedDepth else { throw bad(at, "nests more than \(SafeTensors.maxSavedDepth) tables deep") }
            var seen: Set<KeyIdentity> = []
            var entries: [(key: SavedValue, value: SavedValue)] = []
            for (i, pair) in pairs.enumerated() {
                guard pair.count == 2 else { throw bad(at, "entry \(i + 1) is not a [key, value] pair") }
                let key = try value(pair[0], at: "\(at) key \(i + 1)", depth: depth + 1)
                guard let id = KeyIdentity(key) else { throw bad(at, "key \(i + 1) is not a number (other than NaN), string or boolean") }
                guard seen.insert(id).inserted else { throw bad(at, "has the key \(SavedValueWriter.label(key)) twice") }
                entries.append((key, try value(pair[1], at: "\(at)[\(SavedValueWriter.label(key))]", depth: depth + 1)))
            }
            return .table(entries)
        }
    }
}
