import ArgumentParser
import SSKDTensor

/// The `sskd` command line: one subcommand per job (see README).
@main
struct SSKDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sskd",
        abstract: "Knowledge distillation on small data, scripted in Lua over native Swift tensors.",
        subcommands: [Run.self, Repl.self, Info.self, Bench.self]
    )
}

/// `sskd bench ...`: benchmarks (timings live here, never in tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks against the PyTorch reference scripts in scripts/.",
        subcommands: [BenchOps.self, BenchData.self, BenchTrain.self, BenchLua.self]
    )
}
