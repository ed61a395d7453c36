import Foundation
import SSKDNN
import XCTest
@testable import SSKDLua

/// torch.load on files other tools wrote (every safetensors dtype, converted to float32 and said
/// so in `info`), and both directions checked by Python's safetensors through
/// scripts/reference/torch_save_check.py. The round trips themselves are lua/test_save.lua.
final class SaveLoadTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-save-tests-\(getpid())").path

    override class func setUp() { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ name: String) -> String { "\(Self.dir)/\(name)" }

    /// What torch.load gave for a file, one sorted line per tensor:
    /// `name dtype inexact shape v1,v2,...` (values with 9 significant digits: float32 exactly).
    func loadWithLua(_ file: String) throws -> (format: String, lines: [String], metadata: String) {
        let host = try LuaHost()
        let r = try host.evaluate("""
            local sd, info = torch.load(\(SafeTensors.jsonString(file)))
            local lines = {}
            for name, t in pairs(sd) do
              local vals = {}
              for i, v in ipairs(t:reshape(-1):tolist()) do vals[i] = ("%.9g"):format(v) end
              lines[#lines + 1] = table.concat({name, info.dtypes[name], tostring(info.inexact[name] or 0), table.concat(t.shape, "x"), table.concat(vals, ",")}, " ")
            end
            table.sort(lines)
            local meta = {}
            for k, v in pairs(info.metadata) do meta[#meta + 1] = k .. "=" .. v end
            table.sort(meta)
            return info.format, table.concat(lines, "\\n"), table.concat(meta, ";")
            """)
        XCTAssertEqual(r.count, 3)
        return (r[0], r[1].split(separator: "\n").map(String.init), r[2])
    }

    /// One line as `loadWithLua` prints it.
    func line(_ name: String, _ dtype: String, inexact: Int, _ values: [Float]) -> String {
        "\(name) \(dtype) \(inexact) \(values.count) " + values.map { String(format: "%.9g", Double($0)) }.joined(separator: ",")
    }

    func testForeignDTypesConvertToFloat32AndSaySo() throws {
        // One tensor per dtype, little-endian bytes as another tool writes them.
        var body: [UInt8] = []
        var header: [String] = []
        func entry<T>(_ name: String, _ dtype: String, _ values: [T]) {
            let begin = body.count
            for v in values { withUnsafeBytes(of: v) { body += $0 } }
            header.append(#""\#(name)":{"dtype":"\#(dtype)","shape":[\#(values.count)],"data_offsets":[\#(begin),\#(body.count)]}"#)
        }
        entry("half", "F16", [UInt16(0x3C00), 0xC100, 0x7BFF, 0x0001, 0x7C00])      // 1, -2.5, 65504, 2^-24, inf
        entry("bfloat", "BF16", [UInt16(0x3F80), 0xBF00, 0x7F7F])                   // 1, -0.5, 3.39e38
        entry("double", "F64", [0.5, 0.1, 1e300, -1e-50, -2.0])
        entry("long", "I64", [Int64(0), -7, 1 << 24, (1 << 24) + 1, .max])
        entry("int", "I32", [Int32((1 << 24) + 1), .min])
        entry("short", "I16", [Int16.min, .max])
        entry("char", "I8", [Int8.min, .max])
        entry("byte", "U8", [UInt8(0), 255])
        entry("mask", "BOOL", [UInt8(1), 0, 2])
        let json = Array(("{\"__metadata__\":{\"source\":\"other tool\"}," + header.joined(separator: ",") + "}").utf8)
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: json + body)
        let p = path("foreign.safetensors")
        try file.write(to: URL(fileURLWithPath: p))

        let loaded = try loadWithLua(p)
        XCTAssertEqual(loaded.format, "safetensors")
        XCTAssertEqual(loaded.metadata, "source=other tool")
        XCTAssertEqual(loaded.lines, [
            line("bfloat", "BF16", inexact: 0, [1, -0.5, Float(bitPattern: 0x7F7F_0000)]),
            line("byte", "U8", inexact: 0, [0, 255]),
            line("char", "I8", inexact: 0, [-128, 127]),
            // 0.1 rounds, 1e300 overflows to inf, -1e-50 underflows to -0: three values changed.
            line("double", "F64", inexact: 3, [0.5, Float(0.1), .infinity, -0.0, -2]),
            line("half", "F16", inexact: 0, [1, -2.5, 65504, 0x1p-24, .infinity]),
            // 2^24 + 1 and 2^63 - 1 have no float32: they round (to 2^24 and 2^63).
            line("int", "I32", inexact: 1, [16_777_216, -2_147_483_648]),
            line("long", "I64", inexact: 2, [0, -7, 16_777_216, 16_777_216, 0x1p63]),
            line("mask", "BOOL", inexact: 0, [1, 0, 1]),
            line("short", "I16", inexact: 0, [-32768, 32767]),
        ])
    }

    // MARK: Python's safetensors (the real client)

    /// Python with numpy and safetensors: `$SSKD_PYTHON`, else `.build/pyenv/bin/python` in the
    /// package (scripts/test.sh creates it). Missing is a failure: a skipped check is not a pass.
    func python() throws -> String {
        let env = ProcessInfo.processInfo.environment["SSKD_PYTHON"]
        let candidate = env ?? "\(Self.root)/.build/pyenv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw CrossCheckError(description: "Python for the safetensors cross-check not found at \(candidate)\(env == nil ? "" : " ($SSKD_PYTHON)"): run scripts/test.sh (it creates .build/pyenv with numpy and safetensors) or set SSKD_PYTHON")
        }
        return candidate
    }

    /// Runs torch_save_check.py and parses its JSON output.
    func referenceScript(_ args: [String]) throws -> [String: Any] {
        let script = "\(Self.root)/scripts/reference/torch_save_check.py"
        let r = try runProcess(try python(), [script] + args, input: "")
        guard r.status == 0 else {
            throw CrossCheckError(description: "torch_save_check.py \(args.joined(separator: " ")) failed (status \(r.status)):\n\(r.err)")
        }
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8))
        return try XCTUnwrap(json as? [String: Any], "not a JSON object: \(r.out)")
    }

    /// A float from the script's JSON (non-finite values are strings there).
    func float(_ v: Any) -> Float? {
        if let s = v as? String { return Float(s) }
        return (v as? NSNumber).map { Float(truncating: $0) }
    }

    func testPythonSafetensorsReadsWhatTorchSaveWrote() throws {
        let p = path("from-sskd.safetensors")
        let host = try LuaHost()
        try host.execute("""
            torch.save({
              model = {weight = torch.arange(6):reshape(2, 3), bias = torch.zeros(0)},
              list = {torch.ones(2, 0), torch.tensor(3.5), 7},
              ["a.b"] = torch.tensor{1, 2}, a = {b = torch.tensor{3}},
              name = "héllo ✓", steps = 42,
            }, \(SafeTensors.jsonString(p)), {epoch = 3, note = "unicode ✓"})
            """)
        let out = try referenceScript(["check", p])
        let tensors = try XCTUnwrap(out["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(Set(tensors.keys), ["model.weight", "model.bias", "list.1", "list.2", "a.b", "a.b#2"])
        func shape(_ k: String) -> [Int] { (tensors[k]?["shape"] as? [Int]) ?? [-1] }
        func values(_ k: String) -> [Float] { ((tensors[k]?["values"] as? [Any]) ?? []).compactMap(float) }
        XCTAssertEqual(shape("model.weight"), [2, 3]); XCTAssertEqual(values("model.weight"), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(shape("model.bias"), [0]); XCTAssertEqual(shape("list.1"), [2, 0])
        XCTAssertEqual(shape("list.2"), []); XCTAssertEqual(values("list.2"), [3.5])
        XCTAssertEqual(values("a.b"), [3], "the nested a.b sorts first and keeps the plain name")
        XCTAssertEqual(values("a.b#2"), [1, 2])
        XCTAssertEqual(out["metadata"] as? [String: String], ["epoch": "3", "note": "unicode ✓"])
        // The description, as Python's json reads it: plain values are there too.
        let value = try XCTUnwrap(out["value"] as? [String: Any])
        let pairs = try XCTUnwrap(value["table"] as? [[[String: Any]]])
        let byKey = Dictionary(uniqueKeysWithValues: pairs.compactMap { p in (p[0]["string"] as? String).map { ($0, p[1]) } })
        XCTAssertEqual(byKey["name"]?["string"] as? String, "héllo ✓")
        XCTAssertEqual(byKey["steps"]?["integer"] as? Int, 42)
    }

    func testTorchLoadReadsWhatPythonWrote() throws {
        let p = path("from-python.safetensors")
        let out = try referenceScript(["write", p])
        let expected = try XCTUnwrap(out["tensors"] as? [String: [String: Any]])
        XCTAssertGreaterThanOrEqual(expected.count, 8, "one tensor per dtype (BF16 only with torch)")
        let want = expected.keys.sorted().map { name -> String in
            let e = expected[name]!
            let values = ((e["float32"] as? [Any]) ?? []).compactMap(float)
            return line(name, e["dtype"] as? String ?? "?", inexact: e["inexact"] as? Int ?? -1, values)
        }
        let loaded = try loadWithLua(p)
        XCTAssertEqual(loaded.format, "safetensors")
        XCTAssertEqual(loaded.lines, want)
        XCTAssertTrue(loaded.metadata.contains("writer=torch_save_check.py"), loaded.metadata)
    }
}

/// Why the Python cross-check could not run: a test failure with this message.
private struct CrossCheckError: Error, CustomStringConvertible {
    let description: String
}
