import ArgumentParser
import Foundation
import SSKDLua

/// `sskd repl`: an interactive Lua prompt with the sskd API.
struct Repl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An interactive Lua prompt (line editing, history in ~/.sskd_history, tab completion, help(x)).",
        discussion: "When standard input is not a terminal, lines are read plainly and no prompts are shown, so a pipe can drive it.")

    @Option(name: .customLong("plugins"), help: ArgumentHelp("An extra plugin folder (repeatable).", valueName: "DIR"))
    var pluginDirs: [String] = []

    @Flag(help: "Do not read or write the history file.")
    var noHistory = false

    func run() throws {
        let host = try LuaHost()
        for p in host.loadPlugins(from: LuaHost.pluginDirectories(extra: pluginDirs)) {
            fputs("sskd: plugin error: \(p)\n", stderr)
        }
        let repl = LuaRepl(host: host)
        if isatty(0) != 0 {
            print("sskd \(sskdVersion) — Lua 5.4 over Swift tensors. help() for help, Ctrl-D to quit.")
            let history = noHistory ? nil : (ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.sskd_history" })
            repl.run(reader: EditLineReader(repl: repl, historyPath: history))
        } else {
            repl.run(reader: PlainLineReader())
        }
    }
}

let sskdVersion = "0.1.0"
