import ArgumentParser
import Foundation
import SSKDLua
import SSKDTensor

/// `sskd fuzz ...`: fuzzers (the file readers' libFuzzer harnesses are `scripts/fuzz.sh`).
struct Fuzz: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fuzzers that search for inputs that crash the host.",
        subcommands: [FuzzLua.self]
    )
}

/// `sskd fuzz lua --seconds N --seed S`: random call sequences over the whole Lua API in one host.
struct FuzzLua: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lua",
        abstract: "Calls every bound Lua function and method with nasty arguments; the host must survive each call.",
        discussion: """
        Runs Fuzz/lua_api.lua in a scratch folder (files the calls write land there) with a memory
        cap, so that valid but huge requests fail fast. Deterministic for a seed. Before each call
        its text goes to the last-call file: if the process dies, that file names the call.
        """)

    @Option(help: "How long to fuzz.") var seconds: Double = 60
    @Option(help: "Seed of the call sequence.") var seed: Int = 0
    @Option(name: .customLong("max-calls"), help: "Stop after this many calls.") var maxCalls: Int?
    @Option(name: .customLong("max-memory"), help: "Cap on tensor memory while fuzzing (SSKD_MAX_MEMORY syntax).") var maxMemory = "512M"
    @Option(name: .customLong("last-call"), help: "Where the text of each call is written before it runs.") var lastCall: String?
    @Option(help: "The fuzzer script (default: Fuzz/lua_api.lua of this checkout).") var script: String?
    @Option(name: .customLong("hang-seconds"), help: "A call still running after this long is a hang: named, exit status 3.") var hangSeconds: Double = 60

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        guard let cap = MemoryLimit.parseBytes(maxMemory) else { throw ValidationError("--max-memory: cannot read '\(maxMemory)' (e.g. 512M, 2G)") }
        guard let path = script ?? LuaHost.builtinPluginDirectory().map({ URL(fileURLWithPath: $0 + "/../Fuzz/lua_api.lua").standardizedFileURL.path }),
              FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("the fuzzer script Fuzz/lua_api.lua was not found; pass --script PATH")
        }
        let fm = FileManager.default
        let scratch = NSTemporaryDirectory() + "sskd-fuzz-lua-\(getpid())"
        try fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: scratch) }
        let last = lastCall ?? NSTemporaryDirectory() + "sskd-fuzz-lua-last-call-seed\(seed).txt"
        print("fuzz lua: \(path), seed \(seed), \(seconds) s, tensor memory capped at \(MemoryLimit.format(cap)); each call is written to \(last) before it runs")

        let host = try LuaHost()
        let problems = host.loadPlugins(from: LuaHost.pluginDirectories())
        for p in problems { fputs("sskd: plugin error: \(p)\n", stderr) }
        guard fm.changeCurrentDirectoryPath(scratch) else { throw ValidationError("cannot enter \(scratch)") }
        MemoryLimit.cap = MemoryStats.liveBytes + cap
        watchForHangs(lastCallFile: last)
        host.setArguments(script: path, settings: [("seconds", "\(seconds)"), ("seed", "\(seed)"), ("last", last),
                                                   ("max_calls", maxCalls.map(String.init) ?? "nil")], arguments: [])
        do {
            try host.execute("local f = assert(loadfile(arg[0])); f(arg.seconds, arg.seed, arg.last, arg.max_calls)", chunkname: "=fuzz")
        } catch {
            fputs("fuzz lua: the fuzzer itself failed: \(error)\n", stderr)
            throw ExitCode(1)
        }
        try? fm.removeItem(atPath: last)
    }

    /// A call that never returns (a lock waiting for itself, an endless loop) is as bad as a crash
    /// and would stall a CI job: a watchdog thread names it and ends the process. Every call
    /// rewrites the last-call file first, so a file older than `hangSeconds` means a stuck call.
    private func watchForHangs(lastCallFile: String) {
        let limit = hangSeconds
        Thread.detachNewThread {
            while true {
                Thread.sleep(forTimeInterval: Swift.min(5, limit / 4))
                guard let attrs = try? FileManager.default.attributesOfItem(atPath: lastCallFile),
                      let written = attrs[.modificationDate] as? Date else { continue }
                let stuck = -written.timeIntervalSinceNow
                if stuck > limit {
                    let call = (try? String(contentsOfFile: lastCallFile, encoding: .utf8)) ?? "?"
                    fputs("fuzz lua: hang: this call has not returned after \(Int(stuck)) s: \(call)\n", stderr)
                    _exit(3)
                }
            }
        }
    }
}
