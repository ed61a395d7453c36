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
        XCTAssertTrue(text.contains("pre-trained for 1 epoch on 200 labelled images outside the student's subset"), text)
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

    /// parallel=true: the student alone trains in a child `sskd` beside the teacher (one thread
    /// each) and hands its result back; it must be the run a one-thread sequential protocol gives.
    func testQuickstartParallelPhasesMatchSequential() throws {
        let exe = try sskdBinary()
        let par = try tempDir(), seq = try tempDir()
        func args(_ out: String, _ parallel: Bool) -> [String] {
            ["run", Self.scripts + "/quickstart.lua"] + (tiny + [("samples", "100"), ("teacher_images", "200"), ("out", out),
                                                               ("parallel", parallel ? "true" : "false")]).flatMap { ["--set", "\($0.0)=\($0.1)"] }
        }
        let p = try runProcess(exe, args(par, true), input: "", env: ["SSKD_THREADS": "2"])
        XCTAssertEqual(p.status, 0, p.out + p.err)
        XCTAssertTrue(p.out.contains("student alone: running beside the teacher in a second process (1 thread; log \(par)/student/log.txt)"), p.out)
        let log = try String(contentsOfFile: par + "/student/log.txt", encoding: .utf8)
        XCTAssertTrue(log.contains("student epoch 2/2"), log)
        XCTAssertFalse(p.err.contains("student epoch"), "the child's progress goes to its log: \(p.err)")
        let s = try runProcess(exe, args(seq, false), input: "", env: ["SSKD_THREADS": "1"])
        XCTAssertEqual(s.status, 0, s.out + s.err)
        // Same seed, one thread each: the student-alone epochs are identical, and so is the table row.
        func evalColumns(_ dir: String) throws -> [String] {
            try String(contentsOfFile: dir + "/student/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return "\(row["train_loss"]!) \(row["eval_accuracy"]!) \(row["eval_loss"]!)"
            }
        }
        XCTAssertEqual(try evalColumns(par), try evalColumns(seq))
        func row(_ text: String) -> String? { text.split(separator: "\n").first { $0.hasPrefix("| 100 | 0 |") }.map(String.init) }
        XCTAssertNotNil(row(p.out), p.out)
        XCTAssertEqual(row(p.out)?.split(separator: "|")[3], row(s.out)?.split(separator: "|")[3], "student-alone column")
        XCTAssertTrue(FileManager.default.fileExists(atPath: par + "/results.md"))
    }

    /// A child process that fails is an error naming the phase and its log; the parent stops.
    func testParallelChildFailureIsReported() throws {
        let exe = try sskdBinary()
        let out = try tempDir()
        // The child cannot build its student; the parent (teacher first) has no student to build either,
        // but the child's failure is what is reported, with its log.
        let settings = tiny.filter { $0.0 != "student" } + [("student", "no_such_model"), ("samples", "100"), ("teacher_images", "200"),
                                                           ("out", out), ("parallel", "true")]
        let r = try runProcess(exe, ["run", Self.scripts + "/quickstart.lua"] + settings.flatMap { ["--set", "\($0.0)=\($0.1)"] },
                               input: "", env: ["SSKD_THREADS": "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("the alone phase failed in its child process") && r.err.contains(out + "/student/log.txt"), r.err)
        let log = try String(contentsOfFile: out + "/student/log.txt", encoding: .utf8)
        XCTAssertTrue(log.contains("unknown student 'no_such_model'"), log)
    }

    /// The protocol's models carry the paper script's head: a fresh nn.Linear(1280, 10) with
    /// PyTorch's default init U(+-1/sqrt(1280)), not torchvision's U(+-1/sqrt(10)).
    func testProtocolModelsHaveThePapersClassifierInit() throws {
        let host = try LuaHost()
        XCTAssertEqual(host.loadPlugins(from: LuaHost.pluginDirectories()), [])
        try host.execute("""
            local protocol = dofile(\(luaQuote(Self.scripts + "/protocol.lua")))
            torch.manual_seed(0)
            local bound = 1 / math.sqrt(1280)
            for _, name in ipairs{"efficientnet_b0", "mobilenet_v2"} do
              local head = protocol.model(name, 1):get("classifier.1")
              assert(head.weight:size(0) == 10 and head.weight:size(1) == 1280, name)
              local w, b = head.weight:abs():max():item(), head.bias:abs():max():item()
              assert(w <= bound and w > 0.9 * bound, name .. " weight bound " .. w)
              assert(b <= bound and b > 0, name .. " bias " .. b)
            end
            -- torchvision's own EfficientNet head init is ten times wider.
            assert(models.efficientnet_b0{classes = 10, in_channels = 1}:get("classifier.1").weight:abs():max():item() > 0.3)
            -- Models without a classifier.1 Linear are left as they are.
            assert(protocol.model("small_cnn", 1))
            """)
    }

    func testUnknownPhaseIsAnError() throws {
        XCTAssertThrowsError(try run("quickstart.lua", [("phases", "teacher,students")])) {
            XCTAssertTrue("\($0)".contains("unknown phase 'students'"), "\($0)")
        }
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
