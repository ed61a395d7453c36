import Foundation
import XCTest

/// The fuzzers as tests: every committed corpus input (seeds and past findings) replays through
/// its harness without a crash, and a short Lua API fuzzing run leaves the host alive. The long
/// campaigns and the libFuzzer runs are `scripts/fuzz.sh` (its short smoke run is in scripts/test.sh).
final class FuzzTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL.path

    func testEveryCorpusInputReplaysWithoutACrash() throws {
        let exe = URL(fileURLWithPath: try sskdBinary()).deletingLastPathComponent().appendingPathComponent("sskd-fuzz").path
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: exe), "sskd-fuzz is built with the tests")
        let corpus = Self.root + "/Fuzz/corpus"
        let targets = try FileManager.default.contentsOfDirectory(atPath: corpus).sorted()
        XCTAssertEqual(targets, ["checkpoint", "cifar10", "idx", "jpeg", "png", "safetensors", "set", "stl10"])
        for t in targets {
            let r = try runProcess(exe, [t, "\(corpus)/\(t)"], input: "", env: ["SWIFT_BACKTRACE": "enable=no"])
            XCTAssertEqual(r.status, 0, "\(t): \(r.err)")
            XCTAssertTrue(r.out.contains("inputs replayed, no crash"), "\(t): \(r.out)")
        }
    }

    func testLuaAPIFuzzerLeavesTheHostAlive() throws {
        let last = NSTemporaryDirectory() + "sskd-fuzz-test-last-call-\(getpid()).txt"
        let r = try runProcess(try sskdBinary(), ["fuzz", "lua", "--seconds", "20", "--seed", "11", "--last-call", last], input: "",
                               env: ["SWIFT_BACKTRACE": "enable=no"])
        let died = (try? String(contentsOfFile: last, encoding: .utf8)) ?? ""
        XCTAssertEqual(r.status, 0, "the host died; the last call was: \(died)\n\(r.err.suffix(2000))")
        XCTAssertTrue(r.out.contains("host alive"), r.out)
        // Every bound function and method was called at least once.
        let words = r.out.split(separator: " ").map(String.init)
        let at = words.firstIndex(of: "callables")
        XCTAssertNotNil(at, r.out)
        if let at, at >= 4 { XCTAssertEqual(words[at - 3], words[at - 1], "callables not reached: \(r.out)") }
    }

    func testAHangingCallIsNamedAndEndsTheFuzzer() throws {
        // A call that never returns must not stall CI: the watchdog names it, exit status 3.
        let script = NSTemporaryDirectory() + "sskd-fuzz-spin-\(getpid()).lua"
        try """
        local _, _, last = ...
        local f = assert(io.open(last, "w")); f:write("call 1 seed 0: spin()"); f:close()
        while true do end
        """.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let r = try runProcess(try sskdBinary(), ["fuzz", "lua", "--script", script, "--hang-seconds", "2", "--seconds", "30"], input: "")
        XCTAssertEqual(r.status, 3, r.err)
        XCTAssertTrue(r.err.contains("hang: this call has not returned") && r.err.contains("spin()"), r.err)
    }

    func testMemoryCapFromTheEnvironment() throws {
        let exe = try sskdBinary()
        let bad = try runProcess(exe, ["info", "mobilenet_v2"], input: "", env: ["SSKD_MAX_MEMORY": "lots"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("SSKD_MAX_MEMORY='lots' is not a size"), bad.err)
        let capped = try runProcess(exe, ["info", "mobilenet_v2"], input: "", env: ["SSKD_MAX_MEMORY": "1M"])
        XCTAssertNotEqual(capped.status, 0)
        XCTAssertTrue(capped.err.contains("more than SSKD_MAX_MEMORY allows (1 MiB)"), capped.err)
        XCTAssertEqual(try runProcess(exe, ["info", "mobilenet_v2"], input: "", env: ["SSKD_MAX_MEMORY": "1G"]).status, 0)
    }
}
