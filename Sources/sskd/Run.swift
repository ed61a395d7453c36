import ArgumentParser
import Foundation
import SSKDDist
import SSKDLua
import SSKDTrain

/// `sskd run recipe.lua [--set key=value ...] [--plugins DIR] [args...]`
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs a Lua recipe.",
        discussion: """
        Settings and arguments reach the recipe as the global table `arg`: `--set epochs=30` gives
        arg.epochs == 30 (numbers, true/false and nil are typed; anything else is a string), and
        positional arguments are arg[1], arg[2], ... (arg[0] is the recipe). Plugins come from the
        shipped plugins/ folder, SSKD_PLUGINS (colon-separated) and --plugins DIR.

        Under mpirun (`mpirun -np 4 sskd run recipe.lua`) every rank runs the recipe: fit and
        distill split each batch over the ranks, `dist.*` reaches the others, and an error on
        one rank ends every rank with a message naming it.
        """)

    @Option(name: .customLong("set"), help: ArgumentHelp("A setting key=value (repeatable).", valueName: "key=value"))
    var settings: [String] = []

    @Option(name: .customLong("plugins"), help: ArgumentHelp("An extra plugin folder (repeatable).", valueName: "DIR"))
    var pluginDirs: [String] = []

    @Flag(name: .customLong("watch"), help: "Reload edited plugin files and sskd.hot modules at every epoch boundary.")
    var watch = false

    @Argument(help: "The recipe file.")
    var recipe: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the recipe (arg[1], arg[2], ...).")
    var arguments: [String] = []

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)  // progress and print() reach logs and pipes line by line
        // --watch may also follow the recipe (before a "--").
        let end = arguments.firstIndex(of: "--") ?? arguments.count
        let watching = watch || arguments[..<end].contains("--watch")
        let rest = arguments.enumerated().filter { !($0.offset < end && $0.element == "--watch") }.map(\.element)
        let (more, morePlugins, positional): ([(String, String)], [String], [String])
        let early: [(String, String)]
        do {
            (more, morePlugins, positional) = try splitRecipeArguments(rest)
            early = try splitRecipeArguments(settings.flatMap { ["--set", $0] }).settings
        } catch { throw ValidationError("\(error)") }
        // Under mpirun every rank joins the job before the recipe runs, so that an error on any
        // rank, however early, can end the others (see the catch below).
        if Communicator.wantsMPI { _ = try Communicator.world() }
        let host = try LuaHost()
        let problems = host.loadPlugins(from: LuaHost.pluginDirectories(extra: pluginDirs + morePlugins))
        if !problems.isEmpty {
            for p in problems { fputs("sskd: plugin error: \(p)\n", stderr) }
            throw ExitCode(1)
        }
        do {
            // Recipes that run phases in child processes (protocol.lua's `parallel`) start this binary.
            var exe = [CChar](repeating: 0, count: 4097)
            if readlink("/proc/self/exe", &exe, 4096) > 0 { host.setSSKDField("executable", String(cString: exe)) }
            if watching { try host.execute("sskd.watching = true; sskd._watch_plugins()") }
            try host.run(file: recipe, settings: early + more, arguments: positional)
        } catch {
            let code: Int32 = Interrupt.requested ? 130 : 1
            // One rank of several: end them all (they may wait in a collective for this one),
            // saying which rank failed.
            if let world = Communicator.existingWorld, world.size > 1 { world.abort("\(error)", code: code) }
            fputs("\(error)\n", stderr)
            throw ExitCode(code)
        }
    }
}
