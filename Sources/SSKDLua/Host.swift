// LuaHost: one Lua 5.4 state with the sskd bindings installed (types, namespaces, docs, the
// prelude, plugins), the collector told about tensor memory, and protected entry points.
import CLua
import CLuaShim
import Foundation
import SSKDTensor

/// A namespace of Lua functions (`torch`, `F`, `nn`, ...) installed as a global table in every
/// host. Each function carries a one-line signature and summary for `help`.
public final class LuaLibrary {
    public let name: String
    public let doc: String
    var functions: [(name: String, id: Int32, doc: LuaDoc)] = []

    init(name: String, doc: String) {
        self.name = name
        self.doc = doc
    }

    /// Registers `name.fn`; the body's `LuaCall.name` (used in error messages) is `"name.fn"`.
    public func function(_ fn: String, _ signature: String, _ summary: String, _ body: @escaping LuaBody) {
        let id = FunctionTable.add(name.isEmpty ? fn : "\(name).\(fn)", body)
        functions.removeAll { $0.name == fn }
        functions.append((fn, id, LuaDoc(signature: signature, summary: summary)))
    }

    /// Makes `fn` another name for an already registered function `existing` of `type`'s methods.
    func alias(_ fn: String, method: String, of type: LuaType) {
        guard let m = type.methods.first(where: { $0.name == method }) else { return }
        functions.removeAll { $0.name == fn }
        functions.append((fn, m.id, LuaDoc(signature: "\(name).\(fn)(x, ...)", summary: "same as x:\(method)(...) — \(m.doc.summary)")))
    }
}

/// The registered namespaces (process-wide).
public enum LuaLibraries {
    nonisolated(unsafe) static var all: [LuaLibrary] = []

    /// The library installed as global `name` ("" for plain globals), created on first use.
    public static func named(_ name: String, doc: String = "") -> LuaLibrary {
        if let l = all.first(where: { $0.name == name }) { return l }
        let l = LuaLibrary(name: name, doc: doc)
        all.append(l)
        return l
    }
}

/// Everything the bridge binds, registered once per process in dependency order.
enum Bindings {
    static let registered: Void = {
        TensorBindings.register()
        TorchBindings.register()
        SaveBindings.register()
        FunctionalBindings.register()
        NNBindings.register()
        ModelConstructorBindings.register()
        LuaModuleBindings.register()
        OptimBindings.register()
        HostBindings.register()
        DataBindings.register()
        TrainBindings.register()
        CacheBindings.register()
        DistBindings.register()
    }()
}

/// A Lua 5.4 interpreter with the sskd API.
///
/// Use from one thread at a time. Errors from Lua come back as `LuaError` whose message is
/// Lua's (`file:line: message`, plus a traceback for `run`).
public final class LuaHost {
    public let L: OpaquePointer
    /// Where Lua's `print` and the REPL write (default: standard output).
    public var write: (String) -> Void = { s in fputs(s, stdout); fflush(stdout) }
    /// Plugin folders searched (in order) by `loadPlugins`.
    public internal(set) var pluginDirectories: [String] = []

    // Collector accounting for tensor memory Lua cannot see.
    var objectPushed = false
    var lastTotalAllocated = MemoryStats.totalAllocatedBytes
    var fullCollectThreshold = LuaHost.minimumFullCollectBytes
    /// Live tensor bytes below which no full collection is forced.
    static let minimumFullCollectBytes = 256 << 20
    /// Allocated bytes between two incremental collector steps.
    static let stepBytes = 1 << 20

    public init() throws {
        _ = Bindings.registered
        guard let L = luaL_newstate() else { throw LuaError("cannot create a Lua state (out of memory)") }
        self.L = L
        sskd_extraspace(L).pointee = Unmanaged.passUnretained(self).toOpaque()
        guard sskd_openlibs(L) == LUA_OK else { throw LuaError("cannot open the Lua standard libraries") }
        installTypes()
        installLibraries()
        try runPrelude()
    }

    deinit {
        lua_close(L)  // runs every __gc: the Swift objects are released
    }

    static func from(_ L: OpaquePointer) -> LuaHost? {
        guard let p = sskd_extraspace(L).pointee else { return nil }
        return Unmanaged<LuaHost>.fromOpaque(p).takeUnretainedValue()
    }

    var call: LuaCall { LuaCall(L, name: "sskd") }

    // MARK: Memory

    static func noteObjectPushed(_ L: OpaquePointer) { from(L)?.objectPushed = true }

    /// After each Swift call that gave Lua new objects: step the collector by the tensor bytes
    /// allocated since the last step (1 KB of step per KB allocated), and force a full
    /// collection when live tensor bytes double past a floor.
    static func afterCall(_ L: OpaquePointer) {
        guard let host = from(L), host.objectPushed else { return }
        host.objectPushed = false
        host.accountMemory()
    }

    func accountMemory() {
        let total = MemoryStats.totalAllocatedBytes
        let delta = total - lastTotalAllocated
        guard delta >= LuaHost.stepBytes else { return }
        lastTotalAllocated = total
        _ = sskd_gc_step(L, Int32(min(delta >> 10, Int(Int32.max))))
        if MemoryStats.liveBytes > fullCollectThreshold {
            _ = sskd_gc_collect(L)
            fullCollectThreshold = max(2 * MemoryStats.liveBytes, LuaHost.minimumFullCollectBytes)
        }
    }

    /// A full collection (frees every tensor Lua no longer references).
    public func collectGarbage() { _ = sskd_gc_collect(L) }

    // MARK: Installation

    private func installTypes() {
        let c = call
        // sskd._types[name] = {doc=, methods={name=sig}, fields={name=doc}}
        lua_createtable(L, 0, 8)  // types doc table (kept on the stack until the prelude takes it)
        for t in LuaTypes.all {
            lua_createtable(L, 0, 16)  // metatable
            let mt = lua_gettop(L)
            c.pushString(t.name); c.setRawField(mt, "__name")
            lua_createtable(L, 0, Int32(t.methods.count))  // methods
            let methods = lua_gettop(L)
            for m in t.methods {
                sskd_push_function(L, m.id)
                c.setRawField(methods, m.name)
            }
            sskd_push_index(L, methods, LuaTypes.indexID)
            c.setRawField(mt, "__index")
            c.pushValue(methods); c.setRawField(mt, "__methods")
            sskd_push_function(L, LuaTypes.newIndexID); c.setRawField(mt, "__newindex")
            sskd_push_function(L, LuaTypes.gcID); c.setRawField(mt, "__gc")
            sskd_push_function(L, LuaTypes.eqID); c.setRawField(mt, "__eq")
            sskd_push_function(L, LuaTypes.tostringID); c.setRawField(mt, "__tostring")
            for (event, id) in t.metamethods { sskd_push_function(L, id); c.setRawField(mt, event) }
            // docs: {doc=, methods={name={sig, summary, fn}}, fields={name=summary}}
            lua_createtable(L, 0, 3)
            let d = lua_gettop(L)
            c.pushString(t.doc); c.setRawField(d, "doc")
            lua_createtable(L, 0, Int32(t.methods.count))
            for m in t.methods {
                lua_createtable(L, 0, 3)
                c.pushString(m.doc.signature); c.setRawField(-2, "sig")
                c.pushString(m.doc.summary); c.setRawField(-2, "summary")
                c.rawField(methods, m.name); c.setRawField(-2, "fn")
                c.setRawField(-2, m.name)
            }
            c.setRawField(d, "methods")
            lua_createtable(L, 0, Int32(t.fields.count))
            for f in t.fields { c.pushString(f.doc); c.setRawField(-2, f.name) }
            c.setRawField(d, "fields")
            c.setRawField(-4, t.name)  // types[name] = docs   (stack: types, mt, methods)
            c.pop()  // methods
            sskd_set_type_metatable(L, t.id)  // pops mt
        }
        lua_setglobal_raw("__sskd_types")
    }

    private func installLibraries() {
        let c = call
        lua_createtable(L, 0, 8)  // libs doc table: name -> {doc=, functions={name={sig,summary,fn}}}
        let docs = lua_gettop(L)
        for lib in LuaLibraries.all {
            // The global table (reuse an existing one, e.g. "string" or globals for "").
            // A dotted name ("optim.lr_scheduler") is a table nested in another.
            sskd_pushglobaltable(L)
            for part in lib.name.split(separator: ".").map(String.init) {
                if c.rawField(-1, part) != LUA_TTABLE {
                    c.pop()
                    lua_createtable(L, 0, Int32(lib.functions.count))
                    c.pushValue(-1); c.setRawField(-3, part)
                }
                lua_rotate(L, -2, 1); c.pop()  // drop the parent
            }
            let tbl = lua_gettop(L)
            lua_createtable(L, 0, 2)
            let d = lua_gettop(L)
            c.pushString(lib.doc); c.setRawField(d, "doc")
            lua_createtable(L, 0, Int32(lib.functions.count))
            for f in lib.functions {
                sskd_push_function(L, f.id)
                c.pushValue(-1); c.setRawField(tbl, f.name)
                lua_createtable(L, 0, 3)
                lua_rotate(L, -2, 1); c.setRawField(-2, "fn")
                c.pushString(f.doc.signature); c.setRawField(-2, "sig")
                c.pushString(f.doc.summary); c.setRawField(-2, "summary")
                c.setRawField(-2, f.name)
            }
            c.setRawField(d, "functions")
            c.setRawField(docs, lib.name.isEmpty ? "_G" : lib.name)
            c.pop()  // tbl
        }
        lua_setglobal_raw("__sskd_libs")
    }

    /// `_G[name] = top` (raw), popping the value.
    func lua_setglobal_raw(_ name: String) {
        sskd_pushglobaltable(L)
        lua_rotate(L, -2, 1)
        call.setRawField(-2, name)
        call.pop()
    }

    private func runPrelude() throws {
        try execute(Prelude.source, chunkname: "=prelude")
    }

    // MARK: Running Lua

    /// Calls the function below `nargs` arguments in protected mode with a traceback handler.
    /// On error, pops the message and throws it.
    public func pcall(nargs: Int32, nresults: Int32, traceback: Bool = true) throws {
        let status = sskd_pcall(L, nargs, nresults, traceback ? 1 : 0)
        guard status == LUA_OK else {
            var len = 0
            let msg = sskd_tostring(L, -1, &len).map { String(cString: $0) } ?? "(error)"
            call.pop(2)
            throw LuaError(msg)
        }
    }

    /// Loads a chunk from a string (a syntax error throws `chunk:line: message`).
    public func load(_ code: String, chunkname: String) throws {
        let status = code.withCString { p in sskd_loadbuffer(L, p, strlen(p), chunkname) }
        guard status == LUA_OK else {
            let msg = call.stringValue(-1) ?? "syntax error"
            call.pop()
            throw LuaError(msg)
        }
    }

    /// Loads a file (a syntax error or unreadable file throws `path:line: message`).
    public func load(file path: String) throws {
        guard sskd_loadfile(L, path) == LUA_OK else {
            let msg = call.stringValue(-1) ?? "cannot load \(path)"
            call.pop()
            throw LuaError(msg)
        }
    }

    /// Runs `code`, discarding results.
    public func execute(_ code: String, chunkname: String = "=(sskd)") throws {
        try load(code, chunkname: chunkname)
        try pcall(nargs: 0, nresults: 0)
    }

    /// Runs `code` and returns its results as strings (via `tostring`).
    @discardableResult
    public func evaluate(_ code: String, chunkname: String = "=(sskd)") throws -> [String] {
        let base = lua_gettop(L)
        try load(code, chunkname: chunkname)
        try pcall(nargs: 0, nresults: LUA_MULTRET)
        var out: [String] = []
        let top = lua_gettop(L)
        if top > base {
            for i in (base + 1)...top {
                var len = 0
                out.append(sskd_tostring(L, i, &len).map { String(cString: $0) } ?? "")
                call.pop()
            }
        }
        lua_settop(L, base)
        return out
    }

    /// Runs a recipe file with `arg` set from settings and positional arguments.
    public func run(file path: String, settings: [(String, String)] = [], arguments: [String] = []) throws {
        setArguments(script: path, settings: settings, arguments: arguments)
        try load(file: path)
        try pcall(nargs: 0, nresults: 0)
    }

    /// Sets the global `arg`: `arg[0]` the script, `arg[1..]` positional, `arg.key` settings;
    /// values typed by `LuaHost.typedValue` (numbers, booleans, nil, strings).
    public func setArguments(script: String, settings: [(String, String)], arguments: [String]) {
        let c = call
        lua_createtable(L, Int32(arguments.count), Int32(settings.count))
        let t = lua_gettop(L)
        c.pushString(script); lua_rawseti(L, t, 0)
        for (i, a) in arguments.enumerated() { pushTyped(a); lua_rawseti(L, t, lua_Integer(i + 1)) }
        for (k, v) in settings { pushTyped(v); c.setRawField(t, k) }
        lua_setglobal_raw("arg")
    }

    /// `"3"` -> 3 (integer), `"0.5"`/`"1e-3"` -> number, `"true"`/`"false"` -> boolean,
    /// `"nil"` -> nil, anything else -> the string.
    func pushTyped(_ s: String) {
        if let i = Int(s) { call.push(i); return }
        if let d = Double(s), !s.isEmpty, s.first != "+" || s.count > 1, d.isFinite || s.lowercased().contains("inf") || s.lowercased() == "nan" {
            call.push(d); return
        }
        switch s {
        case "true": call.push(true)
        case "false": call.push(false)
        case "nil": call.pushNil()
        default: call.pushString(s)
        }
    }

    /// Sets `sskd.<key>` to a string or a list of strings through the API (no Lua source is
    /// generated, so no quoting); does nothing before the prelude made `sskd`.
    public func setSSKDField(_ key: String, _ value: String) { setSSKDField(key) { self.call.pushString(value) } }
    public func setSSKDField(_ key: String, _ values: [String]) {
        setSSKDField(key) {
            lua_createtable(self.L, Int32(values.count), 0)
            let t = lua_gettop(self.L)
            for (i, v) in values.enumerated() { self.call.pushString(v); lua_rawseti(self.L, t, lua_Integer(i + 1)) }
        }
    }
    private func setSSKDField(_ key: String, push: () -> Void) {
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        guard pushGlobal("sskd") == LUA_TTABLE else { return }
        let t = lua_gettop(L)
        push()
        call.setRawField(t, key)
    }

    /// Pushes global `name` (raw; nil when absent).
    @discardableResult
    public func pushGlobal(_ name: String) -> Int32 {
        sskd_pushglobaltable(L)
        let t = call.rawField(-1, name)
        lua_rotate(L, -2, 1); call.pop()
        return t
    }
}
