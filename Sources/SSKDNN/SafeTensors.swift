// safetensors: the weight format torchvision / Hugging Face checkpoints share.
//
// Layout: [u64 little-endian N][N bytes of JSON header][raw little-endian tensor bytes]
// header: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//          "__metadata__": {"key": "string value"}}
// Offsets are relative to the first byte after the header. We write the header padded with
// spaces to a multiple of 8 bytes (as the reference implementation does) and tensors in
// state-dict order; we read any valid file and keep entries ordered by their offsets.

import Foundation
import SSKDTensor

/// Element types of safetensors files. Everything is read into Float32; F32 and I64 are written.
public enum DType: String, CaseIterable, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// A malformed or unreadable safetensors file; the message names the file and the problem.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(_ path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "safetensors \(path): \(message)" }
}

/// What a safetensors file held, as read: its tensors converted to Float32 (with its
/// `__metadata__`), and what the conversion did to them.
public struct SafeTensorsContents {
    public var stateDict: StateDict
    /// The dtype of every tensor in the file, by name (F16, BF16, I64...: all are Float32 now).
    public var fileDTypes: [String: DType]
    /// By name, how many values of a tensor did not convert to Float32 exactly: F64 values that
    /// round or leave float32's range, I64 / I32 values beyond 2^24 in magnitude. Tensors that
    /// converted exactly are absent.
    public var inexactCounts: [String: Int]
}

public enum SafeTensors {
    /// Largest header we accept (the reference implementation's limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    // MARK: Reading

    /// Reads every tensor of a safetensors file (converted to Float32) and its `__metadata__`.
    public static func read(_ path: String) throws -> StateDict { try readContents(path).stateDict }

    /// Decodes safetensors bytes; `path` only labels errors.
    public static func decode(_ data: Data, path: String = "<memory>") throws -> StateDict { try decodeContents(data, path: path).stateDict }

    /// Reads a safetensors file with what the conversion to Float32 did: each tensor's dtype in
    /// the file and how many of its values did not convert exactly.
    public static func readContents(_ path: String) throws -> SafeTensorsContents {
        let data: Data
        // An empty file is an error here: Foundation's reader leaks a buffer on empty files
        // (found by the checkpoint fuzz harness under LeakSanitizer).
        do { data = try WholeFile.read(path) } catch let e as WholeFile.Failure { throw SafeTensorsError(path, e.message) }
        return try decodeContents(data, path: path)
    }

    /// Decodes safetensors bytes with each tensor's dtype and inexact count; `path` only labels errors.
    public static func decodeContents(_ data: Data, path: String = "<memory>") throws -> SafeTensorsContents {
        guard data.count >= 8 else { throw SafeTensorsError(path, "file is \(data.count) bytes, too short for the 8-byte header length") }
        let n64: UInt64 = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self) }.littleEndian
        guard n64 <= UInt64(maxHeaderBytes) else { throw SafeTensorsError(path, "header length \(n64) is too large") }
        let n = Int(n64)
        guard 8 + n <= data.count else { throw SafeTensorsError(path, "header length \(n) runs past the end of the file (\(data.count) bytes); truncated?") }
        let headerBytes = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + n)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes, options: []) }
        catch { throw SafeTensorsError(path, "header is not valid JSON (\(error.localizedDescription))") }
        guard let header = json as? [String: Any] else { throw SafeTensorsError(path, "header is not a JSON object") }

        let dataStart = 8 + n
        let dataLen = data.count - dataStart
        struct Entry { let name: String; let dtype: DType; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        var sd = StateDict()
        var fileDTypes: [String: DType] = [:]
        var inexact: [String: Int] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw SafeTensorsError(path, "__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw SafeTensorsError(path, "__metadata__ value for '\(k)' is not a string") }
                    sd.metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw SafeTensorsError(path, "entry '\(name)' is not an object") }
            guard let ds = info["dtype"] as? String else { throw SafeTensorsError(path, "entry '\(name)' has no dtype") }
            guard let dtype = DType(rawValue: ds) else {
                throw SafeTensorsError(path, "entry '\(name)' has unsupported dtype '\(ds)' (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shapeAny = info["shape"] as? [Any], let shape = ints(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError(path, "entry '\(name)' has an invalid shape")
            }
            guard let offAny = info["data_offsets"] as? [Any], let off = ints(offAny), off.count == 2 else {
                throw SafeTensorsError(path, "entry '\(name)' has invalid data_offsets")
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let (m, o) = acc.0.multipliedReportingOverflow(by: d); return (m, acc.1 || o)
            }
            guard !overflow, elements <= dataLen else { throw SafeTensorsError(path, "entry '\(name)' shape \(shape) is larger than the file") }
            guard off[0] >= 0, off[0] <= off[1], off[1] <= dataLen else {
                throw SafeTensorsError(path, "entry '\(name)' data_offsets \(off) are out of range (data section is \(dataLen) bytes); truncated?")
            }
            guard off[1] - off[0] == elements * dtype.size else {
                throw SafeTensorsError(path, "entry '\(name)' holds \(off[1] - off[0]) bytes but \(ds) \(shape) needs \(elements * dtype.size)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: off[0], end: off[1]))
        }
        entries.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
        for (a, b) in zip(entries, entries.dropFirst()) where a.end > b.begin && a.end > a.begin && b.end > b.begin {
            throw SafeTensorsError(path, "entries '\(a.name)' and '\(b.name)' overlap")
        }
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            for e in entries {
                let t = try Tensor.zeros(e.shape)
                let changed = convert(raw.baseAddress! + dataStart + e.begin, e.dtype, into: t.data, count: t.count)
                sd.set(e.name, t, dtype: e.dtype == .i64 ? .i64 : .f32)
                fileDTypes[e.name] = e.dtype
                if changed > 0 { inexact[e.name] = changed }
            }
        }
        return SafeTensorsContents(stateDict: sd, fileDTypes: fileDTypes, inexactCounts: inexact)
    }

    private static func ints(_ a: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in a {
            // JSONSerialization gives NSNumber; reject fractions.
            guard let num = v as? NSNumber else { return nil }
            let d = num.doubleValue
            guard d == d.rounded(), abs(d) < 9e15 else { return nil }
            out.append(num.intValue)
        }
        return out
    }

    /// Little-endian `count` elements of `dtype` at `src` to Float32; returns how many changed
    /// value on the way (only F64, I64 and I32 can: float32 holds every integer up to 2^24 and
    /// every F16, BF16, I16, I8, U8 and BOOL value exactly).
    @discardableResult
    static func convert(_ src: UnsafeRawPointer, _ dtype: DType, into dst: UnsafeMutablePointer<Float>, count: Int) -> Int {
        var inexact = 0
        switch dtype {
        case .f32: for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f64:
            for i in 0..<count {
                let d = Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                dst[i] = Float(d)
                if Double(dst[i]) != d && !d.isNaN { inexact += 1 }
            }
        case .f16: for i in 0..<count { dst[i] = halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16: for i in 0..<count { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
        case .i64:
            for i in 0..<count {
                let v = Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                dst[i] = Float(v)
                if Int64(exactly: dst[i]) != v { inexact += 1 }
            }
        case .i32:
            for i in 0..<count {
                let v = Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                dst[i] = Float(v)
                if Int64(exactly: dst[i]) != Int64(v) { inexact += 1 }
            }
        case .i16: for i in 0..<count { dst[i] = Float(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .i8: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .u8: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool: for i in 0..<count { dst[i] = src.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        }
        return inexact
    }

    /// IEEE 754 binary16 to binary32 (exact, including subnormals, infinities and NaN).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exp = Int((h >> 10) & 0x1f)
        let mant = UInt32(h & 0x3ff)
        if exp == 0 {
            // Zero or subnormal: mant * 2^-24.
            let v = Float(mant) * 0x1p-24
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
    }

    // MARK: Writing

    /// Encodes a state dict (entries in order; F32, or I64 where the dict says so).
    public static func encode(_ sd: StateDict) throws -> Data {
        var header = "{"
        var first = true
        func item(_ s: String) { header += (first ? "" : ",") + s; first = false }
        if !sd.metadata.isEmpty {
            let meta = sd.metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(sd.metadata[$0]!))" }.joined(separator: ",")
            item("\"__metadata__\":{\(meta)}")
        }
        var offset = 0
        for (key, t) in sd {
            guard key != "__metadata__" else { throw SafeTensorsError("<write>", "a tensor may not be named __metadata__") }
            let dt = sd.dtype(key)
            guard dt == .f32 || dt == .i64 else { throw SafeTensorsError("<write>", "writing \(dt.rawValue) is not supported (entry '\(key)'); use F32 or I64") }
            let bytes = t.count * dt.size
            item("\(jsonString(key)):{\"dtype\":\"\(dt.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += "}"
        var hb = Array(header.utf8)
        while hb.count % 8 != 0 { hb.append(0x20) }
        var out = Data(capacity: 8 + hb.count + offset)
        withUnsafeBytes(of: UInt64(hb.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: hb)
        for (key, t) in sd {
            if sd.dtype(key) == .i64 {
                var v = [Int64](repeating: 0, count: t.count)
                for i in 0..<t.count {
                    let x = t.data[i]
                    v[i] = (x.isFinite && Swift.abs(x) < 9.2e18 ? Int64(x.rounded()) : 0).littleEndian
                }
                v.withUnsafeBytes { out.append(contentsOf: $0) }
            } else {
                // Hosts are little-endian (x86-64, arm64), so Float32 memory is already the file layout.
                out.append(UnsafeBufferPointer(start: t.data, count: t.count))
            }
        }
        return out
    }

    /// Writes a state dict atomically: to a temporary file beside `path`, then renamed over it,
    /// so a crash mid-write never leaves a truncated checkpoint.
    public static func write(_ sd: StateDict, to path: String) throws {
        let data = try encode(sd)
        do { try AtomicFile.write(data, to: path) } catch let e as AtomicFile.Failure { throw SafeTensorsError(path, e.message) }
    }

    /// `s` as a JSON string literal (quotes and escapes); shared with the trainer's metric files.
    public static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

extension Module {
    /// Saves this module's state dict (plus `metadata`) as safetensors, atomically.
    public func save(_ path: String, metadata: [String: String] = [:]) throws {
        var sd = stateDict()
        sd.metadata = metadata
        try SafeTensors.write(sd, to: path)
    }

    /// Loads weights from a safetensors file (see `loadStateDict(_:strict:)`).
    @discardableResult
    public func load(_ path: String, strict: Bool = true) throws -> LoadReport {
        try loadStateDict(SafeTensors.read(path), strict: strict)
    }
}

/// Whole-file writes that never leave a half-written file: the bytes go to a temporary file
/// beside `path` (unique per process and call, so two writers of one path never share it), which
/// is then renamed over `path`. A failure leaves an existing file untouched.
public enum AtomicFile {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String, message: String
        public var description: String { "cannot write \(path): \(message)" }
    }

    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UUID().uuidString.prefix(8))")
        do { try data.write(to: tmp) }
        catch {
            // A disk that fills up mid-write leaves a partial temporary file: not ours to keep.
            try? FileManager.default.removeItem(at: tmp)
            throw Failure(path: path, message: "cannot write temporary file \(tmp.path): \(error.localizedDescription)")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let err = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw Failure(path: path, message: "cannot rename temporary file into place: \(err)")
        }
    }
}

/// A whole file's bytes (memory-mapped). An empty file gives empty bytes without asking
/// Foundation, whose reader leaks a buffer on empty files (found by the fuzz harnesses under
/// LeakSanitizer); a folder is an error that says so (Foundation's is "error 256").
public enum WholeFile {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String, message: String
        public var description: String { "\(path): \(message)" }
    }

    public static func read(_ path: String) throws -> Data {
        var st = stat()
        if stat(path, &st) == 0 {
            if st.st_mode & S_IFMT == S_IFDIR { throw Failure(path: path, message: "is a folder, not a file") }
            if st.st_size == 0 { return Data() }
        }
        do { return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) }
        catch { throw Failure(path: path, message: "cannot read file: \(error.localizedDescription)") }
    }
}
