import Foundation
import SSKDNN

/// A JSON-able metric value (kept ordered in rows so files read in a fixed column order).
public enum MetricValue: Equatable, CustomStringConvertible {
    case number(Double)
    case int(Int)
    case string(String)
    case null

    public var description: String { json }

    var json: String {
        switch self {
        case .number(let d): return d.isFinite ? "\(d)" : (d.isNaN ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"))
        case .int(let i): return String(i)
        case .string(let s): return jsonString(s)
        case .null: return "null"
        }
    }

    var csv: String {
        switch self {
        case .number(let d): return "\(d)"
        case .int(let i): return String(i)
        case .string(let s):
            let quoted = s.unicodeScalars.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
            return quoted ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        case .null: return ""
        }
    }

    public var double: Double? {
        switch self {
        case .number(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }
}

/// Quotes a string for JSON (the safetensors writer's quoting).
@inline(__always) func jsonString(_ s: String) -> String { SafeTensors.jsonString(s) }

/// One ordered row of metrics (an epoch).
public struct MetricRow: Equatable {
    public var fields: [(String, MetricValue)]
    public init(_ fields: [(String, MetricValue)] = []) { self.fields = fields }
    public subscript(key: String) -> MetricValue? {
        get { fields.first { $0.0 == key }?.1 }
        set {
            if let i = fields.firstIndex(where: { $0.0 == key }) {
                if let v = newValue { fields[i].1 = v } else { fields.remove(at: i) }
            } else if let v = newValue { fields.append((key, v)) }
        }
    }
    public var json: String { "{" + fields.map { jsonString($0.0) + ": " + $0.1.json }.joined(separator: ", ") + "}" }
    public static func == (a: MetricRow, b: MetricRow) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// `runs/<name>/`: everything a run leaves. Every file is written atomically (temporary file,
/// then rename), so an interrupted run never leaves a half-written file behind.
public final class RunDirectory {
    public let path: String
    public private(set) var rows: [MetricRow] = []

    public init(path: String) throws {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TrainError("run directory", "cannot create \(path): \(error.localizedDescription)")
        }
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes `data` to `name` inside the run directory atomically.
    public func write(_ name: String, _ data: Data) throws {
        try RunDirectory.writeAtomically(file(name), data)
    }

    public func write(_ name: String, text: String) throws { try write(name, Data(text.utf8)) }

    public static func writeAtomically(_ path: String, _ data: Data) throws {
        let tmp = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw TrainError("write", "cannot write \(tmp): \(String(cString: strerror(errno)))")
        }
        // fsync so a crash after the rename cannot leave an empty file in place.
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(tmp, path) == 0 else {
            let err = String(cString: strerror(errno))
            unlink(tmp)
            throw TrainError("write", "cannot move \(tmp) to \(path): \(err)")
        }
    }

    /// Appends an epoch's row and rewrites metrics.jsonl and metrics.csv.
    public func append(_ row: MetricRow) throws {
        rows.append(row)
        try flushMetrics()
    }

    /// Replaces the rows (on resume: the rows up to the checkpoint's epoch) and rewrites the files.
    public func setRows(_ newRows: [MetricRow]) throws {
        rows = newRows
        try flushMetrics()
    }

    func flushMetrics() throws {
        try write("metrics.jsonl", text: rows.map { $0.json + "\n" }.joined())
        var columns: [String] = []
        for r in rows { for (k, _) in r.fields where !columns.contains(k) { columns.append(k) } }
        var csv = columns.joined(separator: ",") + "\n"
        for r in rows { csv += columns.map { r[$0]?.csv ?? "" }.joined(separator: ",") + "\n" }
        try write("metrics.csv", text: csv)
    }

    /// Reads metrics.jsonl back (for resume), keeping column order and value types.
    public func loadRows() throws -> [MetricRow] {
        let p = file("metrics.jsonl")
        guard let text = try? String(contentsOfFile: p, encoding: .utf8) else { return [] }
        return try RunDirectory.parseRows(text, path: p)
    }

    /// The rows of a metrics.jsonl text (`path` names it in errors).
    public static func parseRows(_ text: String, path p: String) throws -> [MetricRow] {
        try text.split(separator: "\n").enumerated().map { n, line in
            guard let row = parseFlatObject(Substring(line)) else { throw TrainError("resume", "\(p): line \(n + 1) is not a flat JSON object") }
            return row
        }
    }
}

/// Parses the flat JSON objects `MetricRow.json` writes: string keys; number, string or null values.
func parseFlatObject(_ line: Substring) -> MetricRow? {
    var chars = Array(line.unicodeScalars)[...]
    func skipSpace() { while let c = chars.first, c == " " || c == "\t" { chars.removeFirst() } }
    func expect(_ c: Unicode.Scalar) -> Bool { skipSpace(); guard chars.first == c else { return false }; chars.removeFirst(); return true }
    func string() -> String? {
        guard expect("\"") else { return nil }
        var out = String.UnicodeScalarView()
        while let c = chars.popFirst() {
            if c == "\"" { return String(out) }
            if c == "\\" {
                guard let e = chars.popFirst() else { return nil }
                switch e {
                case "n": out.append("\n"); case "r": out.append("\r"); case "t": out.append("\t")
                case "u":
                    let hex = String(String.UnicodeScalarView(chars.prefix(4))); chars = chars.dropFirst(4)
                    guard let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else { return nil }
                    out.append(u)
                default: out.append(e)
                }
            } else { out.append(c) }
        }
        return nil
    }
    guard expect("{") else { return nil }
    var row = MetricRow()
    skipSpace()
    if chars.first == "}" { return row }
    while true {
        guard let key = string(), expect(":") else { return nil }
        skipSpace()
        if chars.first == "\"" {
            guard let v = string() else { return nil }
            row[key] = .string(v)
        } else {
            var tok = ""
            while let c = chars.first, c != ",", c != "}", c != " " { tok.unicodeScalars.append(c); chars.removeFirst() }
            switch tok {
            case "null": row[key] = .null
            case "NaN": row[key] = .number(.nan)
            case "Infinity": row[key] = .number(.infinity)
            case "-Infinity": row[key] = .number(-.infinity)
            default:
                if let i = Int(tok) { row[key] = .int(i) } else if let d = Double(tok) { row[key] = .number(d) } else { return nil }
            }
        }
        skipSpace()
        if expect("}") { return row }
        guard expect(",") else { return nil }
    }
}
