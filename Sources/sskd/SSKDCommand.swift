import ArgumentParser
import Foundation
import SSKDTensor

/// The `sskd` command line: one subcommand per job (see README).
@main
struct SSKDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sskd",
        abstract: "Knowledge distillation on small data, scripted in Lua over native Swift tensors.",
        subcommands: [Run.self, Repl.self, Info.self, Export.self, Predict.self, Bench.self, Fuzz.self]
    )

    /// A malformed SSKD_MAX_MEMORY is refused up front rather than silently ignored.
    static func main() {
        if let problem = MemoryLimit.environmentProblem {
            fputs("sskd: \(problem)\n", stderr)
            Foundation.exit(2)
        }
        main(nil)
    }
}

/// `sskd bench ...`: benchmarks (timings live here, never in tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks against the PyTorch reference scripts in scripts/.",
        subcommands: [BenchOps.self, BenchData.self, BenchTrain.self, BenchLua.self, BenchDist.self]
    )
}
