import Foundation
import XCTest
@testable import SSKDNN
import SSKDTensor

final class SafeTensorsTests: XCTestCase {
    override class func tearDown() { try? FileManager.default.removeItem(at: testTempDir) }

    /// Builds a safetensors file from a header JSON string and raw data bytes.
    func file(_ header: String, _ body: [UInt8]) -> Data {
        var d = Data()
        let h = Array(header.utf8)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: h)
        d.append(contentsOf: body)
        return d
    }

    func testRoundTripKeepsOrderDtypesAndMetadata() throws {
        let m = try reducedEfficientNet()
        let bn = m.submodule("features.0.1") as! BatchNorm2d
        bn.numBatchesTracked.fill_(17)
        bn.runningMean.fill_(0.25)
        let path = tmpPath("roundtrip.safetensors")
        try m.save(path, metadata: ["epoch": "3", "recipe": "paper \"quoted\"\n"])
        let sd = try SafeTensors.read(path)
        XCTAssertEqual(sd.keys, m.stateDict().keys)
        XCTAssertEqual(sd.metadata, ["epoch": "3", "recipe": "paper \"quoted\"\n"])
        XCTAssertEqual(sd.dtype("features.0.1.num_batches_tracked"), .i64)
        XCTAssertEqual(sd["features.0.1.num_batches_tracked"]?.toArray(), [17])
        let m2 = try reducedEfficientNet()
        let report = try m2.load(path)
        XCTAssertTrue(report.isComplete)
        for (a, b) in zip(m.stateDict(), m2.stateDict()) {
            XCTAssertEqual(a.key, b.key)
            XCTAssertEqual(a.tensor.toArray(), b.tensor.toArray(), a.key)
        }
        // The header is 8-byte aligned and no temporary file is left behind.
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(raw.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } % 8, 0)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.contains(".tmp-") })
    }

    func testReadsHalfBFloatDoubleAndIntegers() throws {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 65504 = 0x7BFF, smallest subnormal 0x0001 = 2^-24.
        // BF16: 1.0 = 0x3F80, -0.5 = 0xBF00.
        var body: [UInt8] = []
        for h: UInt16 in [0x3C00, 0xC100, 0x7BFF, 0x0001] { body += [UInt8(h & 0xff), UInt8(h >> 8)] }
        for h: UInt16 in [0x3F80, 0xBF00] { body += [UInt8(h & 0xff), UInt8(h >> 8)] }
        withUnsafeBytes(of: (-3.5).bitPattern.littleEndian) { body += $0 }
        withUnsafeBytes(of: Int64(-7).littleEndian) { body += $0 }
        body += [200]
        let header = """
        {"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},\
        "d":{"dtype":"F64","shape":[],"data_offsets":[12,20]},"i":{"dtype":"I64","shape":[1],"data_offsets":[20,28]},\
        "u":{"dtype":"U8","shape":[1],"data_offsets":[28,29]}}
        """
        let sd = try SafeTensors.decode(file(header, body))
        XCTAssertEqual(sd.keys, ["h", "b", "d", "i", "u"])
        XCTAssertEqual(sd["h"]?.toArray(), [1, -2.5, 65504, 0x1p-24])
        XCTAssertEqual(sd["h"]?.shape, [2, 2])
        XCTAssertEqual(sd["b"]?.toArray(), [1, -0.5])
        XCTAssertEqual(sd["d"]?.toArray(), [-3.5])
        XCTAssertEqual(sd["d"]?.shape, [])
        XCTAssertEqual(sd["i"]?.toArray(), [-7])
        XCTAssertEqual(sd["u"]?.toArray(), [200])
        // What the conversion did: every value above is exact in float32; I64 2^24 + 1, an F64 0.1
        // and an I32 -(2^31 - 1) are not, and are counted.
        let contents = try SafeTensors.decodeContents(file(header, body))
        XCTAssertEqual(contents.fileDTypes, ["h": .f16, "b": .bf16, "d": .f64, "i": .i64, "u": .u8])
        XCTAssertEqual(contents.inexactCounts, [:])
        var inexact: [UInt8] = []
        for v: Int64 in [1 << 24, (1 << 24) + 1, -(1 << 24) - 1] { withUnsafeBytes(of: v.littleEndian) { inexact += $0 } }
        for v in [0.1, 0.5] { withUnsafeBytes(of: v.bitPattern.littleEndian) { inexact += $0 } }
        withUnsafeBytes(of: Int32(-Int32.max).littleEndian) { inexact += $0 }
        let changed = try SafeTensors.decodeContents(file("""
            {"i":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},"d":{"dtype":"F64","shape":[2],"data_offsets":[24,40]},\
            "j":{"dtype":"I32","shape":[1],"data_offsets":[40,44]}}
            """, inexact))
        XCTAssertEqual(changed.inexactCounts, ["i": 2, "d": 1, "j": 1])
        XCTAssertEqual(changed.stateDict["i"]?.toArray(), [16_777_216, 16_777_216, -16_777_216])
    }

    func testMalformedFilesGiveClearErrors() throws {
        func expectError(_ data: Data, _ fragment: String, line: UInt = #line) {
            let path = tmpPath("bad-\(line).safetensors")
            try? data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafeTensors.read(path), line: line) { e in
                let s = "\(e)"
                XCTAssertTrue(s.contains(path), "error should name the file: \(s)", line: line)
                XCTAssertTrue(s.contains(fragment), "'\(fragment)' not in: \(s)", line: line)
            }
        }
        let good = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8))
        XCTAssertNoThrow(try SafeTensors.decode(good))
        expectError(Data([1, 2, 3]), "too short")
        expectError(good.prefix(good.count - 3), "out of range")
        expectError(good.prefix(20), "past the end")
        expectError(file("{not json", []), "not valid JSON")
        expectError(file("[1, 2]", []), "not a JSON object")
        expectError(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#, [UInt8](repeating: 0, count: 8)), "out of range")
        expectError(file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "needs 12")
        expectError(file(#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "unsupported dtype 'C64'")
        expectError(file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, [UInt8](repeating: 0, count: 4)), "invalid shape")
        expectError(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
                         [UInt8](repeating: 0, count: 8)), "overlap")
        expectError(file(#"{"__metadata__":{"k":3}}"#, []), "not a string")
        XCTAssertThrowsError(try SafeTensors.read(tmpPath("does-not-exist.safetensors"))) { e in
            XCTAssertTrue("\(e)".contains("does-not-exist.safetensors"))
        }
    }

    func testStrictLoadListsEveryProblemAndChangesNothing() throws {
        let m = try reducedMobileNetV2()
        var sd = m.stateDict()
        let before = m.stateDict()["features.0.0.weight"]!.toArray()
        var bad = StateDict()
        for (k, t) in sd where k != "features.0.1.running_var" { bad.set(k, try Tensor.zeros(like: t), dtype: sd.dtype(k)) }
        bad.set("classifier.1.weight", try Tensor.zeros([5, 1280]))
        bad.set("extra.weight", try Tensor.zeros([1]))
        XCTAssertThrowsError(try m.loadStateDict(bad)) { e in
            guard let err = e as? StateDictError else { return XCTFail("\(e)") }
            XCTAssertEqual(err.report.missing, ["features.0.1.running_var"])
            XCTAssertEqual(err.report.unexpected, ["extra.weight"])
            XCTAssertEqual(err.report.mismatched.map(\.key), ["classifier.1.weight"])
            let s = "\(e)"
            XCTAssertTrue(s.contains("features.0.1.running_var") && s.contains("extra.weight") && s.contains("classifier.1.weight"))
        }
        XCTAssertEqual(m.stateDict()["features.0.0.weight"]!.toArray(), before, "a failed strict load must not modify the model")
        sd.remove("features.0.1.running_var")
        XCTAssertEqual(sd.count, m.stateDict().count - 1)
    }

    func testNonStrictLoadOfImageNetMobileNetIntoTenClasses() throws {
        // Full-size torchvision layout; weights are marked instead of drawn (fast in debug builds).
        let imagenet = try MobileNetV2(initialize: false)   // 1000 classes
        (imagenet.submodule("features.5.conv.1.0") as! Conv2d).weight.fill_(0.5)
        (imagenet.submodule("classifier.1") as! Linear).weight.fill_(7)
        let path = tmpPath("mnv2-imagenet.safetensors")
        try imagenet.save(path, metadata: ["source": "test"])
        let model = try MobileNetV2(.init(classes: 10), initialize: false)
        (model.submodule("classifier.1") as! Linear).weight.fill_(-1)
        XCTAssertThrowsError(try model.load(path))
        let head = (model.submodule("classifier.1") as! Linear).weight.toArray()
        let report = try model.load(path, strict: false)
        XCTAssertEqual(report.mismatched.map(\.key), ["classifier.1.weight", "classifier.1.bias"])
        XCTAssertEqual(report.mismatched.first?.got, [1000, 1280])
        XCTAssertEqual(report.mismatched.first?.expected, [10, 1280])
        XCTAssertTrue(report.missing.isEmpty && report.unexpected.isEmpty)
        XCTAssertEqual(report.loaded.count, imagenet.stateDict().count - 2)
        XCTAssertTrue((model.submodule("features.5.conv.1.0") as! Conv2d).weight.toArray().allSatisfy { $0 == 0.5 })
        XCTAssertEqual((model.submodule("classifier.1") as! Linear).weight.toArray(), head, "the new head is kept")
    }
}
