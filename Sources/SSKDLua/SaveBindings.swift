// torch.save / torch.load: a tensor or a (nested) table of tensors and plain values on disk, as
// safetensors that Python's safetensors reads (the layout is in Sources/SSKDNN/SavedValue.swift).
// Lua values are read raw (lua_next, no metamethods) and become SSKDNN's SavedValue and back.
import CLua
import CLuaShim
import SSKDNN
import SSKDTensor

enum SaveBindings {
    static func register() {
        let torch = LuaLibraries.named("torch")
        torch.function("save", "torch.save(value, path [, metadata])",
                       "writes a tensor or a table of tensors, numbers, strings, booleans and tables as safetensors (atomically: a failed save leaves the file as it was); metadata: strings kept in the file's __metadata__") { c in
            guard !c.isNoneOrNil(1) else { throw c.argError(1, "Tensor or table") }
            let path = try c.string(2)
            let metadata = try c.stringMetadata(3)
            var reader = LuaValueReader(call: c)
            let value = try reader.value(1, at: "value", depth: 0)
            do { try SafeTensors.save(value, to: path, metadata: metadata) }
            catch { throw LuaError("\(c.name): \(error)") }
            return 0
        }
        torch.function("load", "torch.load(path) -> value, info",
                       "reads a torch.save file (the value exactly) or any safetensors file (a table of its tensors by name, converted to float32); info = {format, dtypes, inexact, metadata} says what the file held") { c in
            let path = try c.string(1)
            let loaded: LoadedValue
            do { loaded = try SafeTensors.load(path) } catch { throw LuaError("\(c.name): \(error)") }
            try push(c, loaded.value)
            try c.reserve(6)
            lua_createtable(c.L, 0, 4)
            c.pushString(loaded.isSavedValue ? "sskd" : "safetensors"); c.setRawField(-2, "format")
            lua_createtable(c.L, 0, Int32(loaded.fileDTypes.count))
            for (k, d) in loaded.fileDTypes { c.pushString(d.rawValue); c.setRawField(-2, k) }
            c.setRawField(-2, "dtypes")
            lua_createtable(c.L, 0, Int32(loaded.inexactCounts.count))
            for (k, n) in loaded.inexactCounts { c.push(n); c.setRawField(-2, k) }
            c.setRawField(-2, "inexact")
            lua_createtable(c.L, 0, Int32(loaded.metadata.count))
            for (k, v) in loaded.metadata { c.pushString(v); c.setRawField(-2, k) }
            c.setRawField(-2, "metadata")
            return 2
        }
    }

    /// Pushes a loaded value; tables are built raw.
    static func push(_ c: LuaCall, _ v: SavedValue) throws {
        try c.reserve(4)
        switch v {
        case let .tensor(t): c.push(t)
        case let .integer(i): lua_pushinteger(c.L, lua_Integer(i))
        case let .number(d): c.push(d)
        case let .string(s): c.pushString(s)
        case let .bytes(b): b.withUnsafeBytes { _ = lua_pushlstring(c.L, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        case let .boolean(b): c.push(b)
        case let .array(items):
            lua_createtable(c.L, Int32(clamping: items.count), 0)
            for (i, item) in items.enumerated() { try push(c, item); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        case let .table(entries):
            lua_createtable(c.L, 0, Int32(clamping: entries.count))
            for e in entries { try push(c, e.key); try push(c, e.value); lua_rawset(c.L, -3) }
        }
    }
}

/// Reads a Lua value for torch.save; errors name where in the value the problem is
/// (`value.model.layers[2]`).
private struct LuaValueReader {
    let call: LuaCall
    /// Tables on the path from the root to the one being read: meeting one again is a cycle.
    var open: Set<UnsafeRawPointer> = []

    init(call: LuaCall) { self.call = call }

    var L: OpaquePointer { call.L }

    mutating func value(_ index: Int32, at path: String, depth: Int) throws -> SavedValue {
        let c = call
        switch lua_type(L, index) {
        case LUA_TNUMBER:
            return lua_isinteger(L, index) != 0 ? .integer(Int64(lua_tointegerx(L, index, nil))) : .number(lua_tonumberx(L, index, nil))
        case LUA_TBOOLEAN: return .boolean(lua_toboolean(L, index) != 0)
        case LUA_TSTRING: return string(index)
        case LUA_TTABLE: return try table(lua_absindex(L, index), at: path, depth: depth)
        default:
            if let t = c.toObject(index, Tensor.self) { return .tensor(t) }
            let type = c.typeName(index)
            let hint = c.toObject(index, Module.self) != nil ? " (save its weights with m:save(path), or the table m:state_dict())" : ""
            throw LuaError("\(c.name): \(path) is \(article(type)) \(type), which cannot be saved\(hint); torch.save takes tensors, numbers, strings, booleans and tables of them")
        }
    }

    /// A Lua string: UTF-8 text, or raw bytes when it is not UTF-8.
    func string(_ index: Int32) -> SavedValue {
        var len = 0
        guard let p = lua_tolstring(L, index, &len) else { return .bytes([]) }
        let bytes = UnsafeRawBufferPointer(start: p, count: len)
        if let s = String(validating: bytes, as: UTF8.self) { return .string(s) }
        return .bytes(Array(bytes))
    }

    mutating func table(_ t: Int32, at path: String, depth: Int) throws -> SavedValue {
        let c = call
        guard depth < SafeTensors.maxSavedDepth else { throw LuaError("\(c.name): \(path) nests more than \(SafeTensors.maxSavedDepth) tables deep") }
        if lua_getmetatable(L, t) != 0 {
            c.pop()
            throw LuaError("\(c.name): \(path) is a table with a metatable (an object such as a schedule or stopper); torch.save stores plain tables only")
        }
        guard let id = lua_topointer(L, t) else { throw LuaError("\(c.name): \(path) cannot be read") }
        guard open.insert(id).inserted else { throw LuaError("\(c.name): \(path) is a cyclic reference to a table that contains it; torch.save stores trees") }
        defer { open.remove(id) }
        try c.reserve(6)
        var entries: [(key: SavedValue, value: SavedValue)] = []
        lua_pushnil(L)
        // (A thrown error leaves the stack as it is: the trampoline raises after we return.)
        while lua_next(L, t) != 0 {
            let key: SavedValue
            switch lua_type(L, -2) {
            case LUA_TNUMBER, LUA_TBOOLEAN, LUA_TSTRING: key = try value(-2, at: path, depth: depth)
            default: throw LuaError("\(c.name): \(path) has a key of type \(c.typeName(-2)); table keys must be numbers, strings or booleans")
            }
            entries.append((key, try value(-1, at: path + Self.step(key), depth: depth + 1)))
            c.pop()
        }
        // Distinct integer keys all within 1...n, n of them, are exactly t[1..n]: a sequence, saved
        // as an array (so is an empty table).
        let isArray = entries.allSatisfy { e in
            if case let .integer(k) = e.key { return k >= 1 && k <= Int64(entries.count) }
            return false
        }
        if isArray {
            var items = [SavedValue?](repeating: nil, count: entries.count)
            for e in entries { if case let .integer(k) = e.key { items[Int(k) - 1] = e.value } }
            return .array(items.map { $0! })
        }
        return .table(entries)
    }

    /// How a key extends a path in messages: `.name` for identifiers, `[3]`, `["a.b"]` otherwise.
    static func step(_ key: SavedValue) -> String {
        switch key {
        case let .string(s):
            let identifier = s.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
                && s.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
            return identifier ? "." + s : "[" + SafeTensors.jsonString(s) + "]"
        case let .integer(i): return "[\(i)]"
        case let .number(d): return "[\(d)]"
        case let .boolean(b): return "[\(b)]"
        case let .bytes(b): return "[" + SafeTensors.jsonString(String(decoding: b, as: UTF8.self)) + "]"
        default: return "[?]"
        }
    }
}

private func article(_ word: String) -> String {
    word.first.map { "aeiouAEIOU".contains($0) } == true ? "an" : "a"
}
