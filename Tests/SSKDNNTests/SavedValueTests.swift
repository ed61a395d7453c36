import Foundation
import XCTest
@testable import SSKDNN
import SSKDTensor

/// The torch.save file layout (SavedValue.swift): exact round trips and clear errors for files
/// whose description does not fit their tensors.
final class SavedValueTests: XCTestCase {
    override class func tearDown() { try? FileManager.default.removeItem(at: testTempDir) }

    /// A readable, order-independent rendering of a value (tables sorted by rendered key;
    /// numbers by bit pattern so -0.0 and NaN count).
    func render(_ v: SavedValue) -> String {
        switch v {
        case let .tensor(t): return "T\(t.shape)\(t.toArray().map(\.bitPattern))\(t.requiresGrad ? "rg" : "")"
        case let .integer(i): return "i\(i)"
        case let .number(d): return "n\(d.bitPattern)"
        case let .string(s): return "s\(SafeTensors.jsonString(s))"
        case let .bytes(b): return "b\(b)"
        case let .boolean(b): return "\(b)"
        case let .array(items): return "[" + items.map(render).joined(separator: ",") + "]"
        case let .table(entries): return "{" + entries.map { render($0.key) + "=" + render($0.value) }.sorted().joined(separator: ",") + "}"
        }
    }

    func testEveryKindOfValueRoundTripsExactly() throws {
        let w = try Tensor.randn([2, 3])
        let g = try Tensor.randn([2]).requiringGrad()
        let value = SavedValue.table([
            (.string("weights"), .array([.tensor(w), .tensor(try Tensor.zeros([2, 0])), .tensor(try Tensor.scalar(1.5)), .tensor(g)])),
            (.string("same"), .tensor(w)),
            (.integer(.max), .integer(.min)),
            (.number(0.5), .number(-0.0)),
            (.boolean(true), .number(.nan)),
            (.string("a.b"), .number(.infinity)),
            (.bytes([0xff, 0x00, 0xfe]), .bytes([0x80])),
            (.string("text"), .string("héllo ✓ \u{0}\n\"")),
            (.string("empty"), .array([])),
        ])
        let path = tmpPath("every-kind.safetensors")
        try SafeTensors.save(value, to: path, metadata: ["note": "kept"])
        let loaded = try SafeTensors.load(path)
        XCTAssertTrue(loaded.isSavedValue)
        XCTAssertEqual(loaded.metadata, ["note": "kept"])
        XCTAssertEqual(render(loaded.value), render(value))
        XCTAssertEqual(Set(loaded.fileDTypes.values), [.f32])
        XCTAssertEqual(loaded.inexactCounts, [:])
        // A tensor that appears twice is one entry in the file and one object after loading.
        XCTAssertEqual(loaded.fileDTypes.keys.sorted(), ["same", "weights.2", "weights.3", "weights.4"], "keys sorted: \"same\" names w")
        guard case let .table(entries) = loaded.value,
              case let .tensor(same)? = entries.first(where: { render($0.key) == render(.string("same")) })?.value,
              case let .array(ws)? = entries.first(where: { render($0.key) == render(.string("weights")) })?.value,
              case let .tensor(first) = ws[0] else { return XCTFail("unexpected structure: \(render(loaded.value))") }
        XCTAssertTrue(same === first)
    }

    func testSameValueGivesTheSameBytes() throws {
        // Lua hands table entries over in no particular order; the file must not depend on it.
        let t = try Tensor.arange(4)
        let entries: [(key: SavedValue, value: SavedValue)] = [(.string("b"), .tensor(t)), (.integer(2), .boolean(false)), (.string("a"), .integer(1)), (.boolean(true), .string("x"))]
        let a = try SafeTensors.encode(SafeTensors.stateDict(saving: .table(entries)))
        let b = try SafeTensors.encode(SafeTensors.stateDict(saving: .table(entries.reversed())))
        XCTAssertEqual(a, b)
    }

    func testSavingRefusesReservedMetadataDuplicateKeysAndDeepNestingAndKeepsTheFile() throws {
        let path = tmpPath("keep.safetensors")
        try SafeTensors.save(.integer(1), to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        assertErrorContains(["metadata key 'sskd.torch.save' is reserved"]) { try SafeTensors.save(.integer(2), to: path, metadata: ["sskd.torch.save": "x"]) }
        assertErrorContains(["has the key 1.0 twice"]) { try SafeTensors.save(.table([(.integer(1), .integer(1)), (.number(1.0), .integer(2))]), to: path) }
        assertErrorContains(["table key must be"]) { try SafeTensors.save(.table([(.number(.nan), .integer(1))]), to: path) }
        assertErrorContains(["table key must be"]) { try SafeTensors.save(.table([(.array([]), .integer(1))]), to: path) }
        var deep = SavedValue.integer(0)
        for _ in 0...SafeTensors.maxSavedDepth { deep = .array([deep]) }
        assertErrorContains(["nests more than \(SafeTensors.maxSavedDepth) tables deep"]) { try SafeTensors.save(deep, to: path) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.contains(".tmp-") })
    }

    func testDescriptionsThatDoNotFitTheFileAreClearErrors() throws {
        /// A file holding tensor `x` and the given description.
        func expectError(_ description: String, _ fragment: String, tensors: [String] = ["x"], line: UInt = #line) throws {
            var sd = StateDict()
            for name in tensors { sd.set(name, try Tensor.ones([2])) }
            sd.metadata[SafeTensors.savedValueKey] = description
            let path = tmpPath("tampered-\(line).safetensors")
            try SafeTensors.encode(sd).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafeTensors.load(path), line: line) { e in
                let s = "\(e)"
                XCTAssertTrue(s.contains(path), "error should name the file: \(s)", line: line)
                XCTAssertTrue(s.contains(fragment), "'\(fragment)' not in: \(s)", line: line)
            }
        }
        try expectError(#"{"version":1,"value":{"tensor":"x"}}"#.replacingOccurrences(of: "}}", with: "}"), "is malformed")
        try expectError(#"{"version":2,"value":{"tensor":"x"}}"#, "has version 2; this sskd reads version 1")
        try expectError(#"{"value":{"tensor":"x"}}"#, "missing 'version'")
        try expectError(#"{"version":1,"value":{"tensor":"y"}}"#, "value names tensor 'y', which the file does not hold")
        try expectError(#"{"version":1,"value":{"tensor":"x"}}"#, "tensor 'z' is not part of the value", tensors: ["x", "z"])
        try expectError(#"{"version":1,"value":{"float":1}}"#, "exactly one of tensor, integer")
        try expectError(#"{"version":1,"value":{"integer":1.5}}"#, "is malformed")
        try expectError(#"{"version":1,"value":{"array":[{"tensor":"x"},{"bytes":"@@"}]}}"#, "value[2] is bytes that are not base64")
        try expectError(#"{"version":1,"value":{"table":[[{"string":"a"},{"tensor":"x"}],[{"string":"a"},{"integer":1}]]}}"#, "has the key a twice")
        try expectError(#"{"version":1,"value":{"table":[[{"tensor":"x"}]]}}"#, "entry 1 is not a [key, value] pair")
        try expectError(#"{"version":1,"value":{"table":[[{"array":[]},{"tensor":"x"}]]}}"#, "key 1 is not a number")
        let deep = String(repeating: #"{"array":["#, count: 101) + #"{"tensor":"x"}"# + String(repeating: "]}", count: 101)
        try expectError(#"{"version":1,"value":"# + deep + "}", "nests more than 100 tables deep")
    }

    func testAFileWithoutDescriptionLoadsAsItsTensorsByName() throws {
        let m = try reducedMobileNetV2()
        let path = tmpPath("plain.safetensors")
        try m.save(path, metadata: ["epoch": "4"])
        let loaded = try SafeTensors.load(path)
        XCTAssertFalse(loaded.isSavedValue)
        XCTAssertEqual(loaded.metadata, ["epoch": "4"])
        guard case let .table(entries) = loaded.value else { return XCTFail(render(loaded.value)) }
        XCTAssertEqual(entries.map { render($0.key) }, m.stateDict().keys.map { render(.string($0)) })
        XCTAssertEqual(loaded.fileDTypes["features.0.1.num_batches_tracked"], .i64)
        XCTAssertEqual(loaded.fileDTypes["features.0.0.weight"], .f32)
    }
}
