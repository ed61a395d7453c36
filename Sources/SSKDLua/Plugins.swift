// Plugins: Lua files under <dir>/{schedules,losses,stoppers,models}/*.lua, each returning its
// plugin, registered under its file name in the global tables `schedules`, `losses`,
// `stoppers` and `model_variants` (docs/lua-api.md, "Plugins").
import CLua
import CLuaShim
import Foundation
import SSKDTensor

/// Host-level globals: `print` through the host's writer, memory statistics.
enum HostBindings {
    static func register() {
        let G = LuaLibraries.named("", doc: "Global functions.")
        G.function("print", "print(...)", "writes its arguments (via tostring) separated by tabs, then a newline") { c in
            var parts: [String] = []
            for i in 1...max(c.top, 1) where i <= c.top {
                var len = 0
                let p = sskd_tostring(c.L, i, &len)
                parts.append(p.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: len), as: UTF8.self) } ?? "")
                c.pop()
            }
            let line = parts.joined(separator: "\t") + "\n"
            if let host = LuaHost.from(c.L) { host.write(line) } else { fputs(line, stdout) }
            return 0
        }
        let sskd = LuaLibraries.named("sskd", doc: "The host: memory statistics, plugins, documentation helpers.")
        sskd.function("memory", "sskd.memory() -> {live=, peak=, total=}", "bytes held by live tensors, their peak, and bytes ever allocated") { c in
            lua_createtable(c.L, 0, 3)
            c.push(MemoryStats.liveBytes); c.setRawField(-2, "live")
            c.push(MemoryStats.peakBytes); c.setRawField(-2, "peak")
            c.push(MemoryStats.totalAllocatedBytes); c.setRawField(-2, "total")
            return 1
        }
        sskd.function("clock", "sskd.clock() -> number", "wall-clock time in seconds since 1970 (sub-second resolution; os.clock() is CPU time)") { c in
            c.push(Date().timeIntervalSince1970); return 1
        }
        sskd.function("reset_peak", "sskd.reset_peak()", "resets the peak of sskd.memory() to the live bytes") { _ in MemoryStats.resetPeak(); return 0 }
    }
}

/// The plugin kinds, their folder names and the global tables they register into.
public enum PluginKind: String, CaseIterable {
    case schedules, losses, stoppers, models

    /// The global table holding this kind's plugins.
    public var registry: String { self == .models ? "model_variants" : rawValue }
}

extension LuaHost {
    /// The plugin folders used by default: the project's own `plugins/` folder (found from
    /// `SSKD_HOME`, the executable's location or the source tree), then `SSKD_PLUGINS`
    /// (colon-separated), then `extra` (from `--plugins`).
    public static func pluginDirectories(extra: [String] = []) -> [String] {
        var dirs: [String] = []
        if let builtin = builtinPluginDirectory() { dirs.append(builtin) }
        if let env = ProcessInfo.processInfo.environment["SSKD_PLUGINS"] {
            dirs += env.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        dirs += extra
        var seen = Set<String>()
        return dirs.filter { seen.insert(URL(fileURLWithPath: $0).standardizedFileURL.path).inserted }
    }

    /// The shipped `plugins/` folder.
    public static func builtinPluginDirectory() -> String? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let home = ProcessInfo.processInfo.environment["SSKD_HOME"] { candidates.append(home + "/plugins") }
        // .build/<config>/sskd -> repository root
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(exe.appendingPathComponent("../../plugins").standardizedFileURL.path)
        candidates.append(exe.appendingPathComponent("../../../plugins").standardizedFileURL.path)
        // Sources/SSKDLua/Plugins.swift -> repository root
        let src = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../plugins").standardizedFileURL.path
        candidates.append(src)
        // A plugin folder has at least one kind folder (.build/plugins is SwiftPM's, not ours).
        return candidates.first { dir in
            PluginKind.allCases.contains { kind in
                var isDir: ObjCBool = false
                return fm.fileExists(atPath: dir + "/" + kind.rawValue, isDirectory: &isDir) && isDir.boolValue
            }
        }
    }

    /// Loads every plugin of every folder in order and returns the problems (a file that fails to
    /// load, with its file and line; a name defined twice; a wrong return type). Plugins that
    /// load are registered even when others fail.
    @discardableResult
    public func loadPlugins(from directories: [String]) -> [String] {
        pluginDirectories += directories
        // Recipes that start child processes hand these on (SSKD_PLUGINS) as `sskd.plugin_dirs`.
        setSSKDField("plugin_dirs", pluginDirectories)
        var problems: [String] = []
        let fm = FileManager.default
        for kind in PluginKind.allCases {
            for dir in directories {
                let folder = URL(fileURLWithPath: dir).appendingPathComponent(kind.rawValue).path
                guard let names = try? fm.contentsOfDirectory(atPath: folder) else { continue }
                for file in names.sorted() where file.hasSuffix(".lua") {
                    let name = String(file.dropLast(4))
                    let path = folder + "/" + file
                    do { try loadPlugin(kind: kind, name: name, path: path) } catch { problems.append(luaMessage(error)) }
                }
            }
        }
        return problems
    }

    /// Loads one plugin file and registers it as `registry[name]`.
    public func loadPlugin(kind: PluginKind, name: String, path: String) throws {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        pushGlobal("sskd")
        guard call.rawField(-1, "_load_plugin") == LUA_TFUNCTION else { throw LuaError("the prelude is missing sskd._load_plugin") }
        call.pushString(kind.rawValue)
        call.pushString(name)
        call.pushString(path)
        try pcall(nargs: 3, nresults: 0, traceback: false)
    }
}
