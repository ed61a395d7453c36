import Foundation
import SSKDNN
import XCTest

/// Two ranks on this machine under Open MPI's `mpirun` (scripts/setup.sh installs it; a missing
/// mpirun fails these tests). Each test starts the built `sskd` on a script in lua/dist/, waits
/// a bounded time and kills the job on timeout, so a hang is a failure, not a stuck CI job.
final class DistributedTests: XCTestCase {
    static var scripts: String { Bundle.module.resourceURL!.appendingPathComponent("lua/dist").path }
    /// Generous for a job that takes ~1 s: only a hang reaches it.
    static let timeout: TimeInterval = 90

    func mpirun() throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        XCTFail("mpirun is not on PATH: install Open MPI (bash scripts/setup.sh installs openmpi-bin)")
        throw XCTSkip("unreachable after the failure above")
    }

    /// Options that let Open MPI start two ranks here: as root, on 2 cores, in a container
    /// (shared memory without cross-process single copy).
    static let mpiOptions = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader",
                             "--mca", "btl_vader_single_copy_mechanism", "none"]

    struct Outcome { var out: String; var err: String; var status: Int32 }

    /// Runs `exe args` with one compute thread per process; kills it (and fails) after `timeout`.
    func run(_ exe: String, _ args: [String], cwd: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Outcome {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-dist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var env = ProcessInfo.processInfo.environment
        env["SSKD_THREADS"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        try p.run()
        if done.wait(timeout: .now() + Self.timeout) == .timedOut {
            p.terminate()  // mpirun passes SIGTERM on to its ranks
            if done.wait(timeout: .now() + 10) == .timedOut { kill(p.processIdentifier, SIGKILL); done.wait() }
            XCTFail("\(args.joined(separator: " ")) did not end within \(Int(Self.timeout)) s (a hang)", file: file, line: line)
        }
        return Outcome(out: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "", err: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
                       status: p.terminationStatus)
    }

    func sskd(ranks: Int?, _ script: String, _ settings: [String: String]) throws -> Outcome {
        let exe = try sskdBinary()
        let args = ["run", "\(Self.scripts)/\(script)"] + settings.sorted { $0.key < $1.key }.flatMap { ["--set", "\($0.key)=\($0.value)"] }
        guard let ranks else { return try run(exe, args) }
        return try run(try mpirun(), Self.mpiOptions + ["-np", String(ranks), exe] + args)
    }

    func tempPath(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-dist-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d.appendingPathComponent(name).path
    }

    /// Largest |a - b| / (1 + |b|) over the entries of two state dicts (keys filtered by `include`).
    func maxDifference(_ a: StateDict, _ b: StateDict, include: (String) -> Bool = { _ in true }) -> (Float, String) {
        var worst: (Float, String) = (0, "")
        XCTAssertEqual(a.keys, b.keys)
        for k in a.keys where include(k) {
            guard let x = a[k], let y = b[k], x.count == y.count else { XCTFail("\(k) differs in shape"); continue }
            for i in 0..<x.count {
                let d = abs(x.data[i] - y.data[i]) / (1 + abs(y.data[i]))
                if !(d <= worst.0) { worst = (d.isNaN ? .infinity : d, k) }
            }
        }
        return worst
    }

    func assertEquivalent(model: String, compare include: @escaping (String) -> Bool) throws {
        let one = tempPath("one"), two = tempPath("two")
        let r1 = try sskd(ranks: nil, "equivalence.lua", ["out": one, "model": model])
        XCTAssertEqual(r1.status, 0, r1.err)
        let r2 = try sskd(ranks: 2, "equivalence.lua", ["out": two, "model": model])
        XCTAssertEqual(r2.status, 0, r2.err)
        let w1 = try SafeTensors.read(one + ".rank0.safetensors")
        let w20 = try SafeTensors.read(two + ".rank0.safetensors"), w21 = try SafeTensors.read(two + ".rank1.safetensors")
        // The two ranks hold the very same weights and buffers (averaged gradients, rank 0's statistics).
        XCTAssertEqual(maxDifference(w20, w21).0, 0, "ranks 0 and 1 differ")
        // Two ranks x 16 == one rank x 32 up to float rounding (10 SGD steps with momentum).
        let (d, key) = maxDifference(w20, w1, include: include)
        XCTAssertLessThan(d, 1e-5, "largest relative difference in \(key)")
        // Both started from the same weights, and training moved them far beyond that tolerance
        // (the comparison is not between two untouched models).
        let init1 = try SafeTensors.read(one + ".init.safetensors"), init2 = try SafeTensors.read(two + ".init.safetensors")
        XCTAssertEqual(maxDifference(init1, init2).0, 0)
        let moved = maxDifference(w1, init1, include: include).0
        print("\(model): two ranks vs one: \(d) (\(key)); training moved the weights by \(moved)")
        XCTAssertGreaterThan(moved, 1e-2)
    }

    func testTwoRanksMatchOneRankWithoutBatchNorm() throws {
        try assertEquivalent(model: "plain") { _ in true }
    }

    func testTwoRanksMatchOneRankWithBatchNormUpToRunningStatistics() throws {
        // Training normalises with per-shard statistics on both sides (ghost batch norm at one
        // rank); the running statistics are rank 0's shard's at two ranks and the whole batch's
        // (updated twice per step) at one, so they alone may differ.
        try assertEquivalent(model: "bn") { !$0.contains("running_") && !$0.contains("num_batches_tracked") }
    }

    func testCollectivesBetweenTwoRanks() throws {
        let r = try sskd(ranks: 2, "collectives.lua", [:])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("collectives ok"), r.out + r.err)
    }

    func testOneRanksErrorEndsBothNamingIt() throws {
        let r = try sskd(ranks: 2, "equivalence.lua", ["out": tempPath("fail"), "fail_rank": "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("sskd: rank 1 of 2 failed (ending all 2 ranks)"), r.err)
        XCTAssertTrue(r.err.contains("deliberate failure on this rank"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tempPath("fail") + ".json"))
    }

    func testNaNLossOnOneRankEndsBothNamingIt() throws {
        let out = tempPath("nan")
        let r = try sskd(ranks: 2, "equivalence.lua", ["out": out, "nan_rank": "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("sskd: rank 1 of 2 failed (ending all 2 ranks)"), r.err)
        XCTAssertTrue(r.err.lowercased().contains("nan"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".json"))
    }

    func testRanksWithDifferentSettingsAreRefused() throws {
        // One rank with seed 1, the other with seed 2 (Open MPI's MPMD syntax: a ":" between apps).
        let exe = try sskdBinary(), script = "\(Self.scripts)/equivalence.lua", out = tempPath("seeds")
        func app(_ seed: Int) -> [String] { ["-np", "1", exe, "run", script, "--set", "out=\(out)", "--set", "seed=\(seed)"] }
        let r = try run(try mpirun(), Self.mpiOptions + app(1) + [":"] + app(2))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("the ranks' recipes disagree, so they cannot train together: seed: 1 on rank 0, 2 on rank 1"), r.err)
    }

    func testResumeNeedsTheSameNumberOfRanks() throws {
        let run = tempPath("run"), out = tempPath("resume")
        let first = try sskd(ranks: nil, "equivalence.lua", ["out": out, "run": run])
        XCTAssertEqual(first.status, 0, first.err)
        let again = try sskd(ranks: 2, "equivalence.lua", ["out": out, "run": run, "resume": "true"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.err.contains("was trained on 1 rank and this run has 2; resume it with the same number (without mpirun)"), again.err)
        // A two-rank run resumes at two ranks (rank 0 reads the run directory, rank 1 gets it).
        let run2 = tempPath("run2")
        let two = try sskd(ranks: 2, "equivalence.lua", ["out": out, "run": run2])
        XCTAssertEqual(two.status, 0, two.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run2 + "/last.safetensors"))
        let resumed = try sskd(ranks: 2, "equivalence.lua", ["out": out, "run": run2, "resume": "true"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
    }

    /// scripts/sweep.lua deals its (samples x seed x phase) runs over the ranks; rank 0 prints
    /// the usual table with every phase filled in, from both ranks' results.
    func testSweepSpreadsRunsOverRanks() throws {
        let work = tempPath("sweep")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let recipe = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/sweep.lua").standardized.path
        let settings = ["teacher_model=small_cnn", "student=small_cnn", "teacher_epochs=1", "student_epochs=1", "limit_batches=1",
                        "eval_images=40", "batch=16", "val_size=40", "samples_list=50", "seeds=0", "teacher_images=60",
                        "phases=teacher,alone,kd", "cache=\(work)/cache"]
        let r = try run(try mpirun(), Self.mpiOptions + ["-np", "2", try sskdBinary(), "run", recipe] + settings.flatMap { ["--set", $0] }, cwd: work)
        XCTAssertEqual(r.status, 0, r.err)
        let row = try XCTUnwrap(r.out.split(separator: "\n").first { $0.hasPrefix("| 50 | 1 |") }, r.out + r.err)
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        // samples, runs, teacher, alone, kd (both ranks' phases), kd_unlabeled (not run), minutes
        XCTAssertEqual(cells.count, 7, "\(row)")
        for (i, what) in [(2, "teacher"), (3, "alone"), (4, "kd")] { XCTAssertTrue(cells[i].contains("±"), "\(what) missing: \(row)") }
        XCTAssertEqual(cells[5], "-", "\(row)")
        XCTAssertTrue(r.out.contains("2 ranks"), r.out)
        XCTAssertEqual(r.out.components(separatedBy: "| samples | runs |").count, 2, "only rank 0 prints the table")
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/runs/sweep-fmnist.md"))
    }
}
