import Foundation
import XCTest

/// Running the real `sskd` binary from tests (REPL, `sskd run`, child processes).
extension XCTestCase {
    /// The `sskd` executable built next to the test bundle (skipped if it was not built).
    func sskdBinary() throws -> String {
        let dir = Bundle.module.bundleURL.deletingLastPathComponent()
        let path = dir.appendingPathComponent("sskd").path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("sskd binary not built at \(path)") }
        return path
    }

    func runProcess(_ exe: String, _ args: [String], input: String, env: [String: String] = [:]) throws -> (out: String, err: String, status: Int32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        p.standardInput = stdin; p.standardOutput = stdout; p.standardError = stderr
        try p.run()
        stdin.fileHandleForWriting.write(input.data(using: .utf8)!)
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self), p.terminationStatus)
    }
}
