import Foundation
import XCTest
@testable import SSKDLua

/// The recipes in scripts/ end to end in a tiny configuration (a few batches, small models and
/// a few evaluation images), as `sskd run` runs them.
final class RecipeTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static var scripts: String { root + "/scripts" }

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "sskd-recipe-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func run(_ recipe: String, _ settings: [(String, String)]) throws -> String {
        let host = try LuaHost()
        XCTAssertEqual(host.loadPlugins(from: LuaHost.pluginDirectories()), [])
        let out = try tempDir() + "/stdout.txt"
        // Capture what the recipe prints (results table, teacher note) through a Lua-side redirect.
        try host.execute("io.output(\(luaQuote(out))); print = function(...) local t = {} for i = 1, select('#', ...) do t[#t + 1] = tostring((select(i, ...))) end io.write(table.concat(t, '\\t'), '\\n') end")
        try host.run(file: Self.scripts + "/" + recipe, settings: settings)
        try host.execute("io.output():close(); io.output(io.stdout)")
        return try String(contentsOfFile: out, encoding: .utf8)
    }

    func luaQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'" }

    let tiny: [(String, String)] = [("teacher_model", "small_cnn"), ("student", "small_cnn"), ("teacher_epochs", "1"),
                                    ("student_epochs", "2"), ("limit_batches", "2"), ("eval_images", "40"), ("batch", "16")]

    func testQuickstart() throws {
        let out = try tempDir()
        let text = try run("quickstart.lua", tiny + [("samples", "100"), ("teacher_images", "200"), ("out", out)])
        XCTAssertTrue(text.contains("pre-trained on 200 labelled images outside the student's subset"), text)
        XCTAssertTrue(text.contains("| 100 | 0 |"), text)
        for f in ["samples.txt", "teacher.txt", "results.md", "accuracy.png", "teacher/metrics.csv", "student/summary.json", "sskd/plot.png", "teacher.safetensors",
                  "sskd/recipe.lua", "sskd/settings.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        let samples = try String(contentsOfFile: out + "/samples.txt", encoding: .utf8).split(separator: "\n")
        let teacher = try String(contentsOfFile: out + "/teacher.txt", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(samples.count, 100)
        XCTAssertEqual(teacher.count, 200)
        XCTAssertTrue(Set(samples).isDisjoint(with: Set(teacher)), "the teacher never sees the student's samples")
        let settings = try String(contentsOfFile: out + "/sskd/settings.json", encoding: .utf8)
        XCTAssertTrue(settings.contains("\"function\": \"distill\"") && settings.contains("\"set.samples\": 100"), settings)
    }

    func testQuickstartValidationProtocol() throws {
        let out = try tempDir()
        let text = try run("quickstart.lua", tiny + [("samples", "100"), ("teacher_images", "100"), ("select", "val"), ("val_size", "50"), ("out", out)])
        XCTAssertTrue(text.contains("selection on val"), text)
        let sum = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/sskd/summary.json"))) as! [String: Any]
        XCTAssertNotNil(sum["test_accuracy"], "the clean protocol reports test accuracy separately")
    }

    func testBadSettingIsAnError() throws {
        XCTAssertThrowsError(try run("quickstart.lua", [("sample", "5")])) { XCTAssertTrue("\($0)".contains("unknown setting 'sample'"), "\($0)") }
    }

    /// STL-10 binary files in the real format (column-major planes, labels 1..10), tiny.
    func writeSTL10(_ dir: String, train: Int, test: Int) throws {
        func write(_ name: String, _ n: Int) throws {
            var x = [UInt8](repeating: 0, count: n * 27648), y = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                y[i] = UInt8(i % 10 + 1)
                for k in 0..<27648 { x[i * 27648 + k] = UInt8((k * 7 + i * 31 + Int(y[i]) * 40) % 256) }
            }
            try Data(x).write(to: URL(fileURLWithPath: "\(dir)/\(name)_X.bin"))
            try Data(y).write(to: URL(fileURLWithPath: "\(dir)/\(name)_y.bin"))
        }
        try write("train", train)
        try write("test", test)
    }

    func testPaperOnSTL10Format() throws {
        let data = try tempDir(), out = try tempDir()
        try writeSTL10(data, train: 60, test: 30)
        let text = try run("paper.lua", tiny + [("root", data), ("samples_list", "20,40"), ("eval_images", "20"), ("out", out)])
        XCTAssertTrue(text.contains("no ImageNet weights"), "said loudly: \(text)")
        XCTAssertTrue(text.contains("STL-10 (paper: 72.71 %"), text)
        XCTAssertTrue(text.contains("| 20 | 0 |") && text.contains("| 40 | 0 |"), text)
    }

    func testSweepPrintsMeanAndStd() throws {
        let cwd = FileManager.default.currentDirectoryPath
        let work = try tempDir()
        FileManager.default.changeCurrentDirectoryPath(work)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let text = try run("sweep.lua", tiny + [("samples_list", "50"), ("seeds", "0,1"), ("teacher_images", "60")])
        XCTAssertTrue(text.contains("mean ± std over seeds 0,1"), text)
        XCTAssertTrue(text.contains("| 50 | 2 |"), text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/runs/sweep-fmnist.md"))
    }
}
