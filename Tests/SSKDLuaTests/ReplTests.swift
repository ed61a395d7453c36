import Foundation
import XCTest
@testable import SSKDLua

/// Feeds lines to the REPL engine (what a pipe does).
final class ScriptedReader: LineReader {
    var lines: [String]
    var prompts: [String] = []
    var history: [String] = []
    init(_ text: String) { lines = text.components(separatedBy: "\n") }
    func readLine(prompt: String) -> String? {
        prompts.append(prompt)
        return lines.isEmpty ? nil : lines.removeFirst()
    }
    func addHistory(_ chunk: String) { history.append(chunk) }
}

final class ReplTests: XCTestCase {
    func drive(_ input: String) throws -> (output: String, reader: ScriptedReader) {
        let host = try LuaScriptTests.makeHost()
        var out = ""
        host.write = { out += $0 }
        let reader = ScriptedReader(input)
        LuaRepl(host: host).run(reader: reader)
        return (out, reader)
    }

    func testPrintsExpressionsContinuesChunksAndRecoversFromErrors() throws {
        let (out, reader) = try drive("""
        x = torch.tensor{1, 2, 3}
        x:sum()
        function double(v)
          return v * 2
        end
        double(21)
        x:matmul(nil)
        1 +
        2
        for i = 1, 2 do
          print("i", i)
        end
        error("boom")
        schedules.paper_gradual(7)
        {1, 2, a = 3}
        1, "two", nil
        _
        """)
        let lines = out.components(separatedBy: "\n")
        XCTAssertEqual(lines, [
            "tensor(6.)",
            "42",
            "stdin:1: bad argument #2 to 'Tensor:matmul' (Tensor expected, got nil)",
            "3",
            "i\t1", "i\t2",
            "stdin:1: boom",
            "0.2",
            "{1, 2, a = 3}",
            "1\ttwo\tnil",
            "1",
            "", "",
        ], out)
        XCTAssertEqual(reader.prompts.filter { $0 == "...> " }.count, 5, "continuation prompts for the function, `1 +` and the loop")
        XCTAssertTrue(reader.history.contains("function double(v)\n  return v * 2\nend"))
    }

    func testSyntaxErrorsAndIncompleteInputAtEOF() throws {
        let (out, _) = try drive("x = = 1\nprint('after')\nfunction f(")
        XCTAssertTrue(out.hasPrefix("stdin:1: unexpected symbol near '='\nafter\n"), out)
        XCTAssertTrue(out.contains("unexpected end of input"), out)
    }

    func testHelpInTheRepl() throws {
        let (out, _) = try drive("help(torch.zeros)\nx = torch.zeros(2)\nhelp(x.sum)")
        XCTAssertTrue(out.contains("torch.zeros(size...) or torch.zeros{size} -> Tensor\n  a tensor of zeros"), out)
        XCTAssertTrue(out.contains("x:sum([dim [, keepdim]]) -> Tensor"), out)
    }

    func testCompletion() throws {
        let host = try LuaScriptTests.makeHost()
        let repl = LuaRepl(host: host)
        try host.execute("x = torch.zeros(2, 3)")
        XCTAssertEqual(repl.completions(for: "torch.zer"), ["torch.zeros", "torch.zeros_like"])
        XCTAssertTrue(repl.completions(for: "x:so").contains("x:softmax"))
        XCTAssertTrue(repl.completions(for: "x.sh").contains("x.shape"))
        XCTAssertFalse(repl.completions(for: "x:sh").contains("x:shape"), "fields are not methods")
        XCTAssertTrue(repl.completions(for: "pri").contains("print"))
        XCTAssertTrue(repl.completions(for: "wh").contains("while"))
        XCTAssertEqual(repl.completions(for: "schedules.paper"), ["schedules.paper_gradual"])
        XCTAssertTrue(repl.completions(for: "x.grad.").isEmpty, "x.grad is nil")
        XCTAssertTrue(repl.completions(for: "x.T.sh").contains("x.T.shape"), "fields of a field")
        XCTAssertTrue(repl.completions(for: "nosuch.a").isEmpty)
        XCTAssertTrue(repl.completions(for: "string.").contains("string.format"))
        XCTAssertTrue(repl.completions(for: "1.x").isEmpty)
    }

    // MARK: The real binary through a pipe and a pseudo-terminal

    func testBinaryReplThroughAPipe() throws {
        let exe = try sskdBinary()
        let r = try runProcess(exe, ["repl"], input: "x = torch.ones(2, 2)\nx:sum()\nlocal t = {\n1}\nnil + 1\nprint('ok')\n")
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.out, "tensor(4.)\nstdin:1: attempt to perform arithmetic on a nil value\nok\n\n", r.out + r.err)
    }

    func testBinaryReplInAPseudoTerminal() throws {
        let exe = try sskdBinary()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("script(1) not available") }
        let home = NSTemporaryDirectory() + "sskd-home-\(getpid())"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        // libedit reads the terminal: a tab completes torch.ones_l -> torch.ones_like; history is saved.
        let r = try runProcess("/usr/bin/timeout", ["30", "/usr/bin/script", "-qec", "\(exe) repl", "/dev/null"],
                               input: "y = torch.ones_l\t(torch.zeros(2))\ny:numel()\nfunction f()\nreturn 5 end\nf()\nos.exit(0)\n",
                               env: ["HOME": home, "TERM": "dumb"])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        XCTAssertTrue(r.out.contains("sskd> y = torch.ones_like(torch.zeros(2))"), "tab completion: \(r.out)")
        XCTAssertTrue(r.out.contains("...> "), r.out)
        XCTAssertTrue(r.out.contains("y:numel()\r\n2\r\n"), r.out)
        XCTAssertTrue(r.out.contains("f()\r\n5\r\n"), r.out)
        let history = (try? String(contentsOfFile: home + "/.sskd_history", encoding: .utf8)) ?? ""
        XCTAssertTrue(history.contains("y:numel()"), "history file: \(history)")
    }

    func testBinaryRunReportsErrorsAndExitsNonZero() throws {
        let exe = try sskdBinary()
        let recipe = NSTemporaryDirectory() + "sskd-run-\(getpid()).lua"
        try "print(arg.epochs + 1, arg[1], arg.name)\nlocal x = torch.zeros(2)\nx:reshape(3)\n".write(toFile: recipe, atomically: true, encoding: .utf8)
        defer { unlink(recipe) }
        let r = try runProcess(exe, ["run", recipe, "--set", "epochs=29", "pos", "--set=name=abc"], input: "")
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.out, "30\tpos\tabc\n")
        XCTAssertTrue(r.err.hasPrefix("\(recipe):3: reshape: shape [3] is invalid"), r.err)
        XCTAssertTrue(r.err.contains("stack traceback:"), r.err)
        let broken = try runProcess(exe, ["run", recipe, "--plugins", LuaScriptTests.luaDir + "/broken_plugins"], input: "")
        XCTAssertEqual(broken.status, 1)
        XCTAssertTrue(broken.err.contains("plugin error"), broken.err)
    }

    func testBinaryInfo() throws {
        let exe = try sskdBinary()
        let r = try runProcess(exe, ["info", "small_cnn", "--input", "1x8x8", "--classes", "4"], input: "")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("Total params"), r.out)
        XCTAssertTrue(r.out.contains("[1, 4]"), r.out)
        let tree = try runProcess(exe, ["info", "small_cnn"], input: "")
        XCTAssertTrue(tree.out.hasPrefix("Sequential("), tree.out)
        let bad = try runProcess(exe, ["info", "resnet50"], input: "")
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.contains("unknown model 'resnet50' (available: "), bad.err)
        XCTAssertTrue(bad.err.contains("efficientnet_b0"), bad.err)
        let badInput = try runProcess(exe, ["info", "small_cnn", "--input", "3x96"], input: "")
        XCTAssertNotEqual(badInput.status, 0)
        // The small-input MobileNetV2 keeps a 2x2 map where torchvision's ends on 1x1.
        let small = try runProcess(exe, ["info", "mobilenet_v2_small_input", "--input", "1x28x28"], input: "")
        XCTAssertEqual(small.status, 0, small.err)
        func shape(_ out: String, _ layer: String) -> String? {
            out.split(separator: "\n").first { $0.hasPrefix(layer + " ") }.flatMap { l in l.firstRange(of: "[").map { String(l[$0.lowerBound...].prefix { $0 != "]" }) + "]" } }
        }
        XCTAssertEqual(shape(small.out, "features.0.0"), "[1, 32, 28, 28]", small.out)
        XCTAssertEqual(shape(small.out, "features.18.0"), "[1, 1280, 2, 2]", small.out)
        let plain = try runProcess(exe, ["info", "mobilenet_v2", "--input", "1x28x28"], input: "")
        XCTAssertEqual(shape(plain.out, "features.0.0"), "[1, 32, 14, 14]", plain.out)
        XCTAssertEqual(shape(plain.out, "features.18.0"), "[1, 1280, 1, 1]", plain.out)
    }

    /// `sskd bench ops --serve` (scripts/bench_ops.sh drives it beside PyTorch): one JSON line per
    /// request, in order; a bad request gets an error line and the server keeps serving.
    func testBenchOpsServeAnswersEachRequest() throws {
        let exe = try sskdBinary()
        let r = try runProcess(exe, ["bench", "ops", "--serve", "--batch", "2", "--budget", "0.001", "--filter", "sigmoid"],
                               input: "1\n\n99\nabc\n0\n")
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.out.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.count, 4, r.out)
        guard lines.count == 4 else { return }
        XCTAssertEqual(lines[0]?["shape"] as? String, "2x672x1x1", r.out)
        XCTAssertGreaterThan(lines[0]?["forward_ms"] as? Double ?? 0, 0, r.out)
        XCTAssertGreaterThan(lines[0]?["backward_ms"] as? Double ?? 0, 0, r.out)
        XCTAssertEqual(lines[1]?["error"] as? String, "expected a case index in 0..<2, got '99'", r.out)
        XCTAssertEqual(lines[2]?["error"] as? String, "expected a case index in 0..<2, got 'abc'", r.out)
        XCTAssertEqual(lines[3]?["shape"] as? String, "2x96x1x1", r.out)
    }
}
