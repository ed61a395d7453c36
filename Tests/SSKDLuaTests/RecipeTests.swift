import Foundation
import XCTest
@testable import SSKDLua
import SSKDData
import SSKDTrain

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
                                    ("student_epochs", "2"), ("limit_batches", "2"), ("eval_images", "40"), ("batch", "16"),
                                    ("val_size", "40"), ("unlabeled_epochs", "2")]

    /// `tiny` with a teacher cache of the test's own (never the working tree's runs/cache).
    func tinyCached(_ dir: String) -> [(String, String)] { tiny + [("cache", dir + "/cache")] }
    /// The folder recipe chooses its own validation split (a tenth of the labelled images).
    func tinyFolder(_ dir: String) -> [(String, String)] { tinyCached(dir).filter { $0.0 != "val_size" } }

    func testQuickstart() throws {
        let out = try tempDir()
        let text = try run("quickstart.lua", tinyCached(out) + [("samples", "100"), ("teacher_images", "200"), ("out", out)])
        XCTAssertTrue(text.contains("trained for 1 epoch on 200 labelled images outside the student's subset"), text)
        XCTAssertTrue(text.contains("| samples | seed | teacher | student alone | student + SS-KD | SS-KD + unlabeled |"), text)
        XCTAssertTrue(text.contains("| 100 | 0 |"), text)
        for f in ["samples.txt", "teacher.txt", "val.txt", "results.md", "accuracy.png", "teacher/metrics.csv", "student/summary.json",
                  "sskd/plot.png", "teacher.safetensors", "sskd/recipe.lua", "sskd/settings.json",
                  "sskd_unlabeled/summary.json", "sskd_unlabeled/metrics.jsonl", "sskd_unlabeled/best.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        let samples = try String(contentsOfFile: out + "/samples.txt", encoding: .utf8).split(separator: "\n")
        let teacher = try String(contentsOfFile: out + "/teacher.txt", encoding: .utf8).split(separator: "\n")
        let val = try String(contentsOfFile: out + "/val.txt", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(samples.count, 100)
        XCTAssertEqual(teacher.count, 200)
        XCTAssertTrue(Set(samples).isDisjoint(with: Set(teacher)), "the teacher never sees the student's samples")
        XCTAssertTrue(Set(val).isDisjoint(with: Set(teacher)) && Set(val).isDisjoint(with: Set(samples)), "nor the validation split")
        let settings = try String(contentsOfFile: out + "/sskd/settings.json", encoding: .utf8)
        XCTAssertTrue(settings.contains("\"function\": \"distill\"") && settings.contains("\"set.samples\": 100"), settings)
        // results.md names the teacher (trained, its accuracy, the cache file) and every phase's settings.
        let results = try String(contentsOfFile: out + "/results.md", encoding: .utf8)
        for fragment in ["- teacher: small_cnn trained for 1 epoch", "trained in this run", "cached in \(out)/cache/teachers/", "test accuracy ",
                         "- student alone: small_cnn, 100 labelled images, at most 2 epochs, batch 16",
                         "- student + SS-KD:", "- SS-KD + unlabeled: as SS-KD (alpha ", "batches of images without labels per labelled batch"] {
            XCTAssertTrue(results.contains(fragment), "results.md lacks '\(fragment)':\n\(results)")
        }
        // What sskd predict needs: the protocol's student (its head replaced by a same-shaped
        // Linear) is still the plugin's architecture, on Fashion-MNIST's 1x28x28 images.
        let record = try ModelRecord.read(out + "/sskd/model.json")
        XCTAssertEqual(record.constructor?.description, "model_variants.small_cnn{classes = 10, in_channels = 1}")
        XCTAssertEqual(record.input, [1, 28, 28])
        XCTAssertEqual(record.classes.count, 10)
        let sum = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/sskd_unlabeled/summary.json"))) as! [String: Any]
        XCTAssertEqual(sum["name"] as? String, "ss-kd+unlabeled")
        XCTAssertNotNil(sum["test_accuracy"], "the clean protocol reports test accuracy separately")
    }

    /// kd_unlabeled reads `unlabeled_ratio` unlabelled batches per labelled one: its epochs see
    /// (1 + ratio) x the labelled images.
    func testKDUnlabeledSeesRatioTimesMoreImages() throws {
        let out = try tempDir()
        _ = try run("quickstart.lua", tinyCached(out) + [("samples", "100"), ("teacher_images", "200"), ("out", out),
                                                         ("phases", "teacher,kd,kd_unlabeled"), ("unlabeled_ratio", "3")])
        func imagesPerEpoch(_ phase: String) throws -> [Double] {
            try String(contentsOfFile: out + "/\(phase)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return (row["images_per_second"] as! Double) * (row["seconds"] as! Double)
            }
        }
        let kd = try imagesPerEpoch("sskd"), ku = try imagesPerEpoch("sskd_unlabeled")
        XCTAssertEqual(kd.count, 2)
        for (a, b) in zip(kd, ku) { XCTAssertEqual(b / a, 4, accuracy: 0.25, "2 labelled batches of 16 and 6 unlabelled ones per epoch") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/student"), "phases leave out the student alone")
    }

    /// The teacher cache through the recipe: trained once, reused by the same settings, retrained
    /// (with the reason) after a changed setting or a damaged file.
    func testTeacherIsCachedReusedAndRetrained() throws {
        let dir = try tempDir()
        let base = tinyCached(dir) + [("samples", "100"), ("teacher_images", "200"), ("phases", "teacher,kd")]
        let first = try run("quickstart.lua", base + [("out", dir + "/a")])
        XCTAssertTrue(first.contains("teacher: training it: no cached weights for these settings"), first)
        let cached = try XCTUnwrap(first.split(separator: "\n").first { $0.hasPrefix("teacher: cached in ") }).dropFirst("teacher: cached in ".count)
        XCTAssertTrue(FileManager.default.fileExists(atPath: String(cached)))

        let second = try run("quickstart.lua", base + [("out", dir + "/b")])
        XCTAssertTrue(second.contains("teacher: reused \(cached) (trained "), second)
        XCTAssertFalse(second.contains("teacher epoch"), "a reused teacher does not train")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/b/teacher/metrics.jsonl"))
        XCTAssertTrue(try String(contentsOfFile: dir + "/b/results.md", encoding: .utf8).contains("reused from the cache: \(cached)"))
        // The same teacher: the SS-KD student learns the same thing from it.
        func kdRows(_ out: String) throws -> String { try String(contentsOfFile: out + "/sskd/metrics.csv", encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: ",").prefix(6).joined(separator: ",") }.joined(separator: "\n") }
        XCTAssertEqual(try kdRows(dir + "/a"), try kdRows(dir + "/b"))

        let changed = try run("quickstart.lua", base.filter { $0.0 != "teacher_epochs" } + [("teacher_epochs", "2"), ("out", dir + "/c")])
        XCTAssertTrue(changed.contains("teacher: training it: no cached weights for these settings (the closest cached entry") &&
                      changed.contains("epochs: 1 -> 2"), changed)

        var bytes = try Data(contentsOf: URL(fileURLWithPath: String(cached)))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: String(cached)))
        let damaged = try run("quickstart.lua", base + [("out", dir + "/d")])
        XCTAssertTrue(damaged.contains("teacher: training it: the cached file is corrupt"), damaged)
        XCTAssertTrue(damaged.contains("teacher: cached in \(cached)"), "retrained and stored again: \(damaged)")
        let repaired = try run("quickstart.lua", base + [("out", dir + "/e")])
        XCTAssertTrue(repaired.contains("teacher: reused \(cached)"), repaired)

        let off = try run("quickstart.lua", base + [("out", dir + "/f"), ("cache", "false")])
        XCTAssertFalse(off.contains("reused") || off.contains("cached in"), off)
    }

    func testQuickstartValidationProtocol() throws {
        let out = try tempDir()
        let text = try run("quickstart.lua", tinyCached(out) + [("samples", "100"), ("teacher_images", "100"), ("select", "val"), ("out", out)])
        XCTAssertTrue(text.contains("selection on val"), text)
        let sum = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/sskd/summary.json"))) as! [String: Any]
        XCTAssertNotNil(sum["test_accuracy"], "the clean protocol reports test accuracy separately")
    }

    /// parallel=true: the teacher trains with every thread, then the student alone and SS-KD train
    /// in a child `sskd` beside kd_unlabeled (one thread each), and the child hands its results
    /// back; every phase must be the run a one-thread sequential protocol gives (with the same
    /// teacher: the second run reuses the first one's from the shared cache).
    func testQuickstartParallelPhasesMatchSequential() throws {
        let exe = try sskdBinary()
        let par = try tempDir(), seq = try tempDir()
        func args(_ out: String, _ parallel: Bool) -> [String] {
            ["run", Self.scripts + "/quickstart.lua"] + (tinyCached(par) + [("samples", "100"), ("teacher_images", "200"), ("out", out),
                                                               ("parallel", parallel ? "true" : "false")]).flatMap { ["--set", "\($0.0)=\($0.1)"] }
        }
        let p = try runProcess(exe, args(par, true), input: "", env: ["SSKD_THREADS": "2"])
        XCTAssertEqual(p.status, 0, p.out + p.err)
        XCTAssertTrue(p.out.contains("alone,kd: running beside kd_unlabeled in a second process (1 thread; log \(par)/alone-kd.log)"), p.out)
        let log = try String(contentsOfFile: par + "/alone-kd.log", encoding: .utf8)
        XCTAssertTrue(log.contains("student epoch 2/2") && log.contains("ss-kd epoch 2/2"), log)
        XCTAssertFalse(p.err.contains("student epoch") || p.err.contains("ss-kd epoch"), "the child's progress goes to its log: \(p.err)")
        let s = try runProcess(exe, args(seq, false), input: "", env: ["SSKD_THREADS": "1"])
        XCTAssertEqual(s.status, 0, s.out + s.err)
        XCTAssertTrue(s.out.contains("teacher: reused"), s.out)
        // Same seed and teacher, one thread each: every phase's epochs are identical, and so is the table row.
        func evalColumns(_ dir: String, _ phase: String) throws -> [String] {
            try String(contentsOfFile: dir + "/\(phase)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return "\(row["train_loss"]!) \(row["eval_accuracy"]!) \(row["eval_loss"]!)"
            }
        }
        for phase in ["student", "sskd", "sskd_unlabeled"] {
            XCTAssertEqual(try evalColumns(par, phase), try evalColumns(seq, phase), phase)
        }
        func row(_ text: String) -> String? { text.split(separator: "\n").first { $0.hasPrefix("| 100 | 0 |") }.map(String.init) }
        // (The teacher's column is left out: the parent scores it with 2 threads there, 1 here.)
        func students(_ text: String) -> [Substring]? { row(text).map { r in r.split(separator: "|").enumerated().filter { $0.offset != 2 }.map(\.element) } }
        XCTAssertNotNil(row(p.out), p.out)
        XCTAssertEqual(students(p.out), students(s.out), "the students' columns of the table row")
        XCTAssertTrue(FileManager.default.fileExists(atPath: par + "/results.md"))
    }

    /// Without kd_unlabeled, the student alone trains in a child beside the teacher, as before.
    func testParallelStudentAloneBesideTheTeacher() throws {
        let exe = try sskdBinary()
        let out = try tempDir()
        let settings = tinyCached(out) + [("samples", "100"), ("teacher_images", "200"), ("out", out), ("parallel", "true"), ("phases", "teacher,alone,kd")]
        let p = try runProcess(exe, ["run", Self.scripts + "/quickstart.lua"] + settings.flatMap { ["--set", "\($0.0)=\($0.1)"] },
                               input: "", env: ["SSKD_THREADS": "2"])
        XCTAssertEqual(p.status, 0, p.out + p.err)
        XCTAssertTrue(p.out.contains("student alone: running beside the teacher in a second process (1 thread; log \(out)/student/log.txt)"), p.out)
        XCTAssertTrue(try String(contentsOfFile: out + "/student/log.txt", encoding: .utf8).contains("student epoch 2/2"))
        XCTAssertTrue(p.out.contains("| 100 | 0 |"), p.out)
    }

    /// With the teacher in the cache, SS-KD and the student alone share one child beside kd_unlabeled.
    func testParallelWithCachedTeacherRunsStudentsBesideKDUnlabeled() throws {
        let exe = try sskdBinary()
        let dir = try tempDir()
        func args(_ out: String) -> [String] {
            ["run", Self.scripts + "/quickstart.lua"] + (tinyCached(dir) + [("samples", "100"), ("teacher_images", "200"), ("out", out),
                                                                             ("parallel", "true")]).flatMap { ["--set", "\($0.0)=\($0.1)"] }
        }
        let first = try runProcess(exe, args(dir + "/a"), input: "", env: ["SSKD_THREADS": "2"])
        XCTAssertEqual(first.status, 0, first.out + first.err)
        let second = try runProcess(exe, args(dir + "/b"), input: "", env: ["SSKD_THREADS": "2"])
        XCTAssertEqual(second.status, 0, second.out + second.err)
        XCTAssertTrue(second.out.contains("teacher: reused"), second.out)
        XCTAssertTrue(second.out.contains("alone,kd: running beside kd_unlabeled in a second process (1 thread; log \(dir)/b/alone-kd.log)"), second.out)
        func row(_ text: String) -> String? { text.split(separator: "\n").first { $0.hasPrefix("| 100 | 0 |") }.map(String.init) }
        XCTAssertEqual(row(first.out), row(second.out), "the reused teacher gives the same results")
    }

    /// A child process that fails is an error naming the phase and its log; the parent stops.
    func testParallelChildFailureIsReported() throws {
        let exe = try sskdBinary()
        let out = try tempDir()
        // The child (the student alone, beside the teacher) cannot build its student; the parent
        // trains the teacher, then reports the child's failure with its log.
        let settings = tinyCached(out).filter { $0.0 != "student" } + [("student", "no_such_model"), ("samples", "100"), ("teacher_images", "200"),
                                                                       ("out", out), ("parallel", "true"), ("phases", "teacher,alone")]
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

    /// STL-10 binary files in the real format (column-major planes, labels 1..10), tiny; with
    /// `unlabeled` images also an unlabeled_X.bin.
    func writeSTL10(_ dir: String, train: Int, test: Int, unlabeled: Int = 0) throws {
        func write(_ name: String, _ n: Int, labels: Bool = true) throws {
            var x = [UInt8](repeating: 0, count: n * 27648), y = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                y[i] = UInt8(i % 10 + 1)
                for k in 0..<27648 { x[i * 27648 + k] = UInt8((k * 7 + i * 31 + Int(y[i]) * 40) % 256) }
            }
            try Data(x).write(to: URL(fileURLWithPath: "\(dir)/\(name)_X.bin"))
            if labels { try Data(y).write(to: URL(fileURLWithPath: "\(dir)/\(name)_y.bin")) }
        }
        try write("train", train)
        try write("test", test)
        if unlabeled > 0 { try write("unlabeled", unlabeled, labels: false) }
    }

    func testPaperOnSTL10Format() throws {
        let data = try tempDir(), out = try tempDir()
        try writeSTL10(data, train: 60, test: 30, unlabeled: 70)
        // 96x96 images: one batch per epoch and one student epoch keep this debug-build test short.
        let tiny = tinyCached(out).filter { !["limit_batches", "student_epochs", "unlabeled_epochs"].contains($0.0) }
            + [("limit_batches", "1"), ("student_epochs", "1"), ("unlabeled_epochs", "1")]
        let text = try run("paper.lua", tiny + [("root", data), ("samples_list", "20,40"), ("eval_images", "20"), ("out", out)])
        XCTAssertTrue(text.contains("no ImageNet weights"), "said loudly: \(text)")
        XCTAssertTrue(text.contains("STL-10 (paper: 72.71 %"), text)
        XCTAssertTrue(text.contains("| 20 | 0 |") && text.contains("| 40 | 0 |"), text)
        XCTAssertTrue(text.contains("per labelled batch (KD term alone) from 70 unlabelled images"), "kd_unlabeled on STL-10's unlabelled split: \(text)")
        // Without unlabeled_X.bin the phase is a clear error, and leaving it out works.
        try FileManager.default.removeItem(atPath: data + "/unlabeled_X.bin")
        XCTAssertThrowsError(try run("paper.lua", tiny + [("root", data), ("samples_list", "20"), ("out", out)])) {
            XCTAssertTrue("\($0)".contains("the kd_unlabeled phase needs \(data)/unlabeled_X.bin"), "\($0)")
        }
        let three = try run("paper.lua", tiny + [("root", data), ("samples_list", "20"), ("eval_images", "20"), ("out", out),
                                                          ("phases", "teacher,alone,kd")])
        XCTAssertTrue(three.contains("| 20 | 0 |"), three)
    }

    func testSweepPrintsMeanAndStd() throws {
        let cwd = FileManager.default.currentDirectoryPath
        let work = try tempDir()
        _ = FileManager.default.changeCurrentDirectoryPath(work)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        let text = try run("sweep.lua", tiny + [("samples_list", "50"), ("seeds", "0,1"), ("teacher_images", "60")])
        XCTAssertTrue(text.contains("mean ± std over seeds 0,1"), text)
        XCTAssertTrue(text.contains("| samples | runs | teacher | student alone | student + SS-KD | SS-KD + unlabeled | minutes per run |"), text)
        let row = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("| 50 | 2 |") }, text)
        XCTAssertEqual(row.split(separator: "|").count, 7, "samples, runs, four phases, minutes: \(row)")
        XCTAssertFalse(row.contains(" - "), "every phase has a mean: \(row)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/runs/sweep-fmnist.md"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/runs/cache/teachers"), "the sweep's teachers are cached")
    }

    /// Small image folders as a user would have them: train/<class>/, test/<class>/ and an
    /// optional unlabeled/ (with a sub-folder); PNG and JPEG, 12x12 RGB.
    func writeFolders(_ root: String, unlabeled: Bool, testClasses: [String] = ["cat", "dog"]) throws {
        let fm = FileManager.default
        func image(_ k: Int, _ i: Int) throws -> ByteImage {
            var px = [UInt8](repeating: 0, count: 3 * 12 * 12)
            for p in 0..<px.count { px[p] = UInt8((p * 13 + i * 29 + k * 97) % 256) }
            return try ByteImage(shape: ImageShape(channels: 3, height: 12, width: 12), pixels: px)
        }
        func fill(_ dir: String, _ k: Int, _ n: Int) throws {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for i in 0..<n {
                if i % 2 == 0 { try ImageCodec.writePNG(try image(k, i), to: "\(dir)/\(i).png") }
                else { try ImageCodec.writeJPEG(try image(k, i), to: "\(dir)/\(i).jpg") }
            }
        }
        for (k, c) in ["cat", "dog"].enumerated() { try fill("\(root)/train/\(c)", k, 30) }
        for (k, c) in testClasses.enumerated() { try fill("\(root)/test/\(c)", k, 8) }
        if unlabeled {
            try fill("\(root)/unlabeled", 0, 20)
            try fill("\(root)/unlabeled/more", 1, 20)
        }
    }

    func testFolderRecipeRunsFourPhasesWithUnlabeledImages() throws {
        let root = try tempDir(), out = try tempDir()
        try writeFolders(root, unlabeled: true)
        let text = try run("folder.lua", tinyFolder(out) + [("root", root), ("out", out)])
        XCTAssertTrue(text.contains("input: 12x12, from the first training image"), text)
        XCTAssertTrue(text.contains("unlabeled: 40 images in \(root)/unlabeled"), text)
        // 60 labelled images: a tenth (6) for validation, the other 54 are the student's.
        XCTAssertTrue(text.contains("2 classes, 54 labelled samples, 12x12"), text)
        let row = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("| 54 | 0 |") }, text)
        XCTAssertFalse(row.contains("| - |"), "all four phases ran: \(row)")
        XCTAssertTrue(text.contains("from 40 unlabelled images"), text)
        for f in ["sskd_unlabeled/summary.json", "results.md", "accuracy.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        // The size can be set.
        let sized = try run("folder.lua", tinyFolder(out) + [("root", root), ("out", out + "/s"), ("size", "16"), ("phases", "teacher,kd")])
        XCTAssertTrue(sized.contains("54 labelled samples, 16x16"), sized)
    }

    func testFolderRecipeWithoutUnlabeledRunsThreePhases() throws {
        let root = try tempDir(), out = try tempDir()
        try writeFolders(root, unlabeled: false)
        let text = try run("folder.lua", tinyFolder(out) + [("root", root), ("out", out)])
        let row = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("| 54 | 0 |") }, text)
        XCTAssertEqual(row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[5], "-", "no kd_unlabeled without images: \(row)")
        XCTAssertThrowsError(try run("folder.lua", tinyFolder(out) + [("root", root), ("out", out), ("phases", "teacher,kd_unlabeled")])) {
            XCTAssertTrue("\($0)".contains("the kd_unlabeled phase needs images in \(root)/unlabeled/"), "\($0)")
        }
    }

    func testFolderRecipeErrors() throws {
        XCTAssertThrowsError(try run("folder.lua", [])) { XCTAssertTrue("\($0)".contains("set root=DIR"), "\($0)") }
        let missing = try tempDir() + "/nothing"
        XCTAssertThrowsError(try run("folder.lua", [("root", missing)])) {
            XCTAssertTrue("\($0)".contains("\(missing)/train") && "\($0)".contains("not found"), "\($0)")
        }
        let root = try tempDir()
        try writeFolders(root, unlabeled: false, testClasses: ["cat", "fox"])
        XCTAssertThrowsError(try run("folder.lua", [("root", root)])) {
            XCTAssertTrue("\($0)".contains("has classes {cat, fox} but") && "\($0)".contains("{cat, dog}"), "\($0)")
        }
    }
}
