// The interactive loop: read a chunk (continued over lines until it is complete), run it,
// print the results of expressions, survive errors. Line editing, history and tab completion
// come from libedit when standard input is a terminal; otherwise lines are read plainly so a
// pipe can drive the loop.
import CEditLine
import CLua
import CLuaShim
import Foundation

/// A source of input lines for the REPL.
public protocol LineReader: AnyObject {
    /// The next line (without its newline), or nil at end of input.
    func readLine(prompt: String) -> String?
    /// Records a complete chunk in the history (if the reader keeps one).
    func addHistory(_ chunk: String)
}

/// Reads lines from a C stream without echoing prompts (pipes, files, tests).
public final class PlainLineReader: LineReader {
    let stream: UnsafeMutablePointer<FILE>
    let showPrompts: Bool

    public init(stream: UnsafeMutablePointer<FILE> = stdin, showPrompts: Bool = false) {
        self.stream = stream
        self.showPrompts = showPrompts
    }

    public func readLine(prompt: String) -> String? {
        if showPrompts { fputs(prompt, stdout); fflush(stdout) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        let n = getline(&line, &cap, stream)
        guard n >= 0, let line else { return nil }
        var s = String(cString: line)
        if s.hasSuffix("\n") { s.removeLast() }
        if s.hasSuffix("\r") { s.removeLast() }
        return s
    }

    public func addHistory(_ chunk: String) {}
}

/// libedit's readline: line editing, a history file, and tab completion of globals, fields and
/// methods. Only one can be active (libedit's state is global).
public final class EditLineReader: LineReader {
    let historyPath: String?
    nonisolated(unsafe) static var completer: LuaRepl?
    nonisolated(unsafe) static var matches: [String] = []
    nonisolated(unsafe) static var matchIndex = 0

    public init(repl: LuaRepl, historyPath: String?) {
        self.historyPath = historyPath
        EditLineReader.completer = repl
        rl_readline_name = UnsafePointer(strdup("sskd"))
        // '.' and ':' are part of a completion word (torch.ze<TAB>, x:so<TAB>).
        let breaks = " \t\n\"'`@$><=;|&{(,+-*/%^#~[]"
        rl_basic_word_break_characters = UnsafePointer(strdup(breaks))
        rl_completer_word_break_characters = strdup(breaks)
        rl_attempted_completion_function = { text, _, _ in
            rl_attempted_completion_over = 1
            rl_completion_append_character = 0
            guard let text, let repl = EditLineReader.completer else { return nil }
            EditLineReader.matches = repl.completions(for: String(cString: text))
            EditLineReader.matchIndex = 0
            guard !EditLineReader.matches.isEmpty else { return nil }
            return rl_completion_matches(text) { _, state in
                if state == 0 { EditLineReader.matchIndex = 0 }
                guard EditLineReader.matchIndex < EditLineReader.matches.count else { return nil }
                defer { EditLineReader.matchIndex += 1 }
                return strdup(EditLineReader.matches[EditLineReader.matchIndex])
            }
        }
        using_history()
        stifle_history(2000)
        if let historyPath { _ = read_history(historyPath) }
    }

    public func readLine(prompt: String) -> String? {
        guard let p = readline(prompt) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    public func addHistory(_ chunk: String) {
        guard !chunk.trimmingCharacters(in: .whitespaces).isEmpty else { return }
        _ = add_history(chunk)
        if let historyPath { _ = write_history(historyPath) }
    }

    deinit {
        if EditLineReader.completer != nil { EditLineReader.completer = nil }
    }
}

/// The read-eval-print loop over a `LuaHost`.
public final class LuaRepl {
    public let host: LuaHost
    public var prompt = "sskd> "
    public var continuationPrompt = "...> "

    public init(host: LuaHost) { self.host = host }

    /// Runs until the reader reaches end of input.
    public func run(reader: LineReader) {
        while let line = reader.readLine(prompt: prompt) {
            guard let chunk = readChunk(first: line, reader: reader) else { continue }
            reader.addHistory(chunk)
        }
        host.write("\n")
    }

    /// Reads until the chunk is complete (an `<eof>` syntax error means "more input"), runs it and
    /// prints results or the error. Returns the chunk text (nil for blank input).
    @discardableResult
    func readChunk(first: String, reader: LineReader) -> String? {
        var buffer = first
        if buffer.hasPrefix("=") { buffer = "return " + buffer.dropFirst() }  // Lua 5.1 habit
        if buffer.trimmingCharacters(in: .whitespaces).isEmpty { return nil }
        while true {
            switch compile(buffer) {
            case .ok:
                execute()
                return buffer
            case .incomplete:
                guard let more = reader.readLine(prompt: continuationPrompt) else {
                    host.write("stdin: unexpected end of input in an incomplete statement\n")
                    return buffer
                }
                buffer += "\n" + more
            case let .error(message):
                host.write(message + "\n")
                return buffer
            }
        }
    }

    enum Compiled { case ok, incomplete, error(String) }

    /// Leaves the compiled function on the stack when `.ok`: first as `return <chunk>` (so an
    /// expression's value is printed), else as a statement.
    func compile(_ chunk: String) -> Compiled {
        var expressionIncomplete = false
        do {
            try host.load("return " + chunk, chunkname: "=stdin")
            return .ok
        } catch { expressionIncomplete = luaMessage(error).hasSuffix("<eof>") }
        do {
            try host.load(chunk, chunkname: "=stdin")
            return .ok
        } catch {
            let msg = luaMessage(error)
            return msg.hasSuffix("<eof>") || expressionIncomplete ? .incomplete : .error(msg)
        }
    }

    /// Calls the function on top of the stack and prints its results with `sskd.repr`.
    func execute() {
        let L = host.L
        let base = lua_gettop(L) - 1
        do {
            try host.pcall(nargs: 0, nresults: LUA_MULTRET, traceback: false)
        } catch {
            host.write(luaMessage(error) + "\n")
            lua_settop(L, base)
            return
        }
        let n = lua_gettop(L) - base
        guard n > 0 else { return }
        // _ = first result
        lua_pushvalue(L, base + 1)
        host.lua_setglobal_raw("_")
        var parts: [String] = []
        for i in 1...n { parts.append(render(base + i)) }
        lua_settop(L, base)
        host.write(parts.joined(separator: "\t") + "\n")
    }

    /// `sskd.repr(value)` in protected mode (a failing `__tostring` prints its error instead).
    func render(_ index: Int32) -> String {
        let L = host.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        host.pushGlobal("sskd")
        if lua_type(L, -1) == LUA_TTABLE, host.call.rawField(-1, "repr") == LUA_TFUNCTION {
            lua_pushvalue(L, index)
            if sskd_pcall(L, 1, 1, 0) == LUA_OK, let s = host.call.stringValue(-1) { return s }
        }
        var len = 0
        return sskd_tostring(L, index, &len).map { String(cString: $0) } ?? "?"
    }

    // MARK: Completion

    static let keywords = ["and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                           "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"]

    /// Completions of `text` (`torch.ze`, `x:so`, `pri`): globals, table fields, userdata methods
    /// and fields. Uses raw access only, so it never runs Lua code and never raises.
    public func completions(for text: String) -> [String] {
        let L = host.L
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        let c = host.call
        guard let sepIndex = text.lastIndex(where: { $0 == "." || $0 == ":" }) else {
            sskd_pushglobaltable(L)
            let names = c.keys(-1) + LuaRepl.keywords
            return Set(names.filter { $0.hasPrefix(text) && isIdentifier($0) }).sorted()
        }
        let prefix = String(text[..<sepIndex]), sep = text[sepIndex]
        let partial = String(text[text.index(after: sepIndex)...])
        // Resolve the prefix path from the globals.
        sskd_pushglobaltable(L)
        for (k, part) in prefix.split(separator: ".", omittingEmptySubsequences: false).enumerated() {
            let name = String(part)
            guard isIdentifier(name) else { return [] }
            if lua_type(L, -1) == LUA_TTABLE {
                c.rawField(-1, name)
            } else if let box = sskd_to_box(L, -1), let t = LuaTypes.type(id: box.pointee.type), let p = box.pointee.object,
                      let get = t.getters[name], k > 0 {
                let o = Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()
                guard (try? get(LuaCall(L, name: "complete"), o)) != nil else { return [] }
            } else {
                return []
            }
            lua_rotate(L, -2, 1); c.pop()
        }
        var names: [String] = []
        if lua_type(L, -1) == LUA_TTABLE {
            let tbl = lua_gettop(L)
            lua_pushnil(L)
            while lua_next(L, tbl) != 0 {
                if let k = c.stringValue(-2), sep == "." || lua_type(L, -1) == LUA_TFUNCTION { names.append(k) }
                c.pop()
            }
            // Class-like tables: fields of a metatable's __index table.
            if lua_getmetatable(L, tbl) != 0 {
                if c.rawField(-1, "__index") == LUA_TTABLE { names += c.keys(-1) }
                c.pop(2)
            }
        } else if let box = sskd_to_box(L, -1), let t = LuaTypes.type(id: box.pointee.type) {
            names += t.methods.map { $0.name }
            if sep == "." { names += t.fields.map { $0.name } }
        }
        return Set(names.filter { $0.hasPrefix(partial) && isIdentifier($0) }).sorted().map { prefix + String(sep) + $0 }
    }

    private func isIdentifier(_ s: String) -> Bool {
        guard let f = s.first, f == "_" || f.isLetter else { return false }
        return s.allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber } && s.allSatisfy { $0.isASCII }
    }
}
