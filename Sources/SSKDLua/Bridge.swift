// The Lua <-> Swift bridge: function registry, dispatch, typed argument extraction, and the
// generic registration of a Swift class as a Lua userdata type.
//
// The longjmp rule: no function in this file calls a raising Lua API. Swift bodies report errors
// by throwing; the dispatcher turns a thrown error into a message on the stack and a status, and
// the C trampoline (CLuaShim) raises the Lua error after Swift has returned. Every value access
// here is raw (lua_rawget*, lua_rawlen, lua_next) so that no metamethod can run, and so raise,
// inside a Swift frame.
import CLua
import CLuaShim
import SSKDTensor

/// An error raised into Lua with a message (the `file:line:` prefix is added by the trampoline).
public struct LuaError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Thrown by a body whose error value (from a protected Lua call) is already on top of the stack;
/// the trampoline re-raises it unchanged.
struct LuaRethrow: Error {}

/// The body of a Lua-callable Swift function: reads its arguments from `call`, pushes its
/// results and returns how many.
public typealias LuaBody = (LuaCall) throws -> Int32

/// All Swift functions callable from Lua, by id (process-wide; bodies never capture a state).
enum FunctionTable {
    nonisolated(unsafe) static var bodies: [LuaBody] = []
    nonisolated(unsafe) static var names: [String] = []

    static func add(_ name: String, _ body: @escaping LuaBody) -> Int32 {
        installDispatch
        bodies.append(body)
        names.append(name)
        return Int32(bodies.count - 1)
    }

    static let installDispatch: Void = { sskd_set_dispatch(swiftDispatch) }()
}

/// The one entry point from C into Swift.
private let swiftDispatch: sskd_dispatch_fn = { state, id in
    guard let state else { return SSKD_ERROR_MESSAGE }
    let call = LuaCall(state, id: id)
    do {
        let n = try FunctionTable.bodies[Int(id)](call)
        LuaHost.afterCall(state)
        return n
    } catch is LuaRethrow {
        return SSKD_ERROR_VALUE
    } catch {
        call.pushString(luaMessage(error))
        return SSKD_ERROR_MESSAGE
    }
}

/// The text a Swift error shows in Lua.
func luaMessage(_ error: Error) -> String {
    switch error {
    case let e as LuaError: return e.message
    case let e as TensorError: return e.description
    default: return String(describing: error)
    }
}

// MARK: - Stack access

/// A view of a Lua stack during one Swift call (or from the host): non-raising pushes and reads,
/// and typed argument extraction whose errors name the function, the argument and what was
/// expected, like Lua's own `bad argument #2 to 'f' (number expected, got nil)`.
public struct LuaCall {
    public let L: OpaquePointer
    /// The function's id in `FunctionTable` (its name is looked up only for error messages).
    let id: Int32
    let explicitName: String?

    /// The Lua-visible name of the running function (`"torch.zeros"`, `"Tensor:sum"`).
    public var name: String { explicitName ?? FunctionTable.names[Int(id)] }

    public init(_ L: OpaquePointer, name: String) {
        self.L = L
        self.id = -1
        self.explicitName = name
    }

    init(_ L: OpaquePointer, id: Int32) {
        self.L = L
        self.id = id
        self.explicitName = nil
    }

    // MARK: Stack basics

    public var top: Int32 { lua_gettop(L) }
    public func type(_ i: Int32) -> Int32 { lua_type(L, i) }
    public func isNoneOrNil(_ i: Int32) -> Bool { lua_type(L, i) <= 0 }
    public func pop(_ n: Int32 = 1) { sskd_pop(L, n) }
    public func pushValue(_ i: Int32) { lua_pushvalue(L, i) }
    public func pushNil() { lua_pushnil(L) }
    public func push(_ v: Bool) { lua_pushboolean(L, v ? 1 : 0) }
    public func push(_ v: Double) { lua_pushnumber(L, v) }
    public func push(_ v: Float) { lua_pushnumber(L, Double(v)) }
    public func push(_ v: Int) { lua_pushinteger(L, lua_Integer(v)) }
    public func pushString(_ s: String) {
        var s = s
        s.withUTF8 { b in _ = lua_pushlstring(L, b.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, b.count) }
    }
    /// Pushes a Lua array (1-based) of integers.
    public func push(ints: [Int]) {
        lua_createtable(L, Int32(ints.count), 0)
        for (i, v) in ints.enumerated() { lua_pushinteger(L, lua_Integer(v)); lua_rawseti(L, -2, lua_Integer(i + 1)) }
    }
    /// Makes sure `n` more slots are available.
    public func reserve(_ n: Int32) throws {
        guard lua_checkstack(L, n) != 0 else { throw LuaError("\(name): Lua stack overflow") }
    }

    /// The name of the value's type as error messages show it: a Swift type name for our
    /// userdata ("Tensor"), else Lua's ("number", "nil", "no value").
    public func typeName(_ i: Int32) -> String {
        if let box = sskd_to_box(L, i) { return LuaTypes.name(of: box.pointee.type) }
        let t = lua_type(L, i)
        if t == LUA_TNONE { return "no value" }
        return String(cString: lua_typename(L, t))
    }

    /// Reads the string at `i` without converting numbers in place.
    public func stringValue(_ i: Int32) -> String? {
        guard lua_type(L, i) == LUA_TSTRING else { return nil }
        var len = 0
        guard let p = lua_tolstring(L, i, &len) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }

    // MARK: Errors

    /// `bad argument #i to 'name' (expected expected, got type)`.
    public func argError(_ i: Int32, _ expected: String) -> LuaError {
        LuaError("bad argument #\(i) to '\(name)' (\(expected) expected, got \(typeName(i)))")
    }
    /// `bad argument #i to 'name' (message)`.
    public func argError(_ i: Int32, message: String) -> LuaError {
        LuaError("bad argument #\(i) to '\(name)' (\(message))")
    }

    // MARK: Typed arguments

    public func number(_ i: Int32) throws -> Double {
        guard lua_type(L, i) == LUA_TNUMBER else { throw argError(i, "number") }
        return lua_tonumberx(L, i, nil)
    }
    public func float(_ i: Int32) throws -> Float { Float(try number(i)) }
    public func optNumber(_ i: Int32) throws -> Double? { isNoneOrNil(i) ? nil : try number(i) }
    public func optFloat(_ i: Int32) throws -> Float? { isNoneOrNil(i) ? nil : try float(i) }
    public func float(_ i: Int32, default d: Float) throws -> Float { try optFloat(i) ?? d }

    /// An integer (a float with an integral value is accepted, like Lua's own APIs).
    public func int(_ i: Int32) throws -> Int {
        guard lua_type(L, i) == LUA_TNUMBER else { throw argError(i, "integer") }
        var v: lua_Integer = 0
        guard sskd_isinteger_value(L, i, &v) != 0 else { throw argError(i, message: "number has no integer representation") }
        return Int(v)
    }
    public func optInt(_ i: Int32) throws -> Int? { isNoneOrNil(i) ? nil : try int(i) }
    public func int(_ i: Int32, default d: Int) throws -> Int { try optInt(i) ?? d }

    public func bool(_ i: Int32) throws -> Bool {
        guard lua_type(L, i) == LUA_TBOOLEAN else { throw argError(i, "boolean") }
        return lua_toboolean(L, i) != 0
    }
    public func optBool(_ i: Int32) throws -> Bool? { isNoneOrNil(i) ? nil : try bool(i) }

    public func string(_ i: Int32) throws -> String {
        guard let s = stringValue(i) else { throw argError(i, "string") }
        return s
    }
    public func optString(_ i: Int32) throws -> String? { isNoneOrNil(i) ? nil : try string(i) }

    /// Checks that `i` is a table.
    public func table(_ i: Int32) throws {
        guard lua_type(L, i) == LUA_TTABLE else { throw argError(i, "table") }
    }

    /// Checks that `i` can be called: a function, or a table/userdata with `__call`.
    public func callable(_ i: Int32) throws {
        if lua_type(L, i) == LUA_TFUNCTION { return }
        if lua_getmetatable(L, i) != 0 {
            lua_pushstring(L, "__call")
            let t = lua_rawget(L, -2)
            pop(2)
            if t != LUA_TNIL { return }
        }
        throw argError(i, "function")
    }

    /// A list of integers given either as a table at `i` or as the numbers from `i` to the top
    /// (`torch.zeros(2, 3)` and `torch.zeros{2, 3}` alike).
    public func ints(from i: Int32, what: String = "size") throws -> [Int] {
        if lua_type(L, i) == LUA_TTABLE {
            guard top == i else { throw argError(i + 1, message: "no arguments expected after the \(what) table") }
            return try intArray(i, what: what)
        }
        var out: [Int] = []
        var k = i
        while k <= top {
            guard lua_type(L, k) == LUA_TNUMBER else { throw argError(k, "integer (\(what))") }
            out.append(try int(k))
            k += 1
        }
        return out
    }

    /// The integers of the Lua array at `i` (entries 1...#t).
    public func intArray(_ i: Int32, what: String = "list") throws -> [Int] {
        guard lua_type(L, i) == LUA_TTABLE else { throw argError(i, "table of integers (\(what))") }
        let n = lua_rawlen(L, i)
        var out: [Int] = []
        out.reserveCapacity(Int(n))
        for k in 1...max(Int(n), 1) where k <= n {
            lua_rawgeti(L, i, lua_Integer(k))
            defer { pop() }
            var v: lua_Integer = 0
            guard lua_type(L, -1) == LUA_TNUMBER, sskd_isinteger_value(L, -1, &v) != 0 else {
                throw argError(i, message: "\(what) entry \(k) must be an integer, got \(typeName(-1))")
            }
            out.append(Int(v))
        }
        return out
    }

    /// A table of file metadata at `i` (none or nil: empty): string keys; string values, numbers
    /// and booleans stored as their text (`3`, `0.5`, `true`), as safetensors' `__metadata__` holds strings.
    public func stringMetadata(_ i: Int32) throws -> [String: String] {
        guard !isNoneOrNil(i) else { return [:] }
        guard type(i) == LUA_TTABLE else { throw argError(i, "table of metadata") }
        var meta: [String: String] = [:]
        let t = lua_absindex(L, i)
        lua_pushnil(L)
        // (A thrown error leaves the stack as it is: the trampoline raises after we return.)
        while lua_next(L, t) != 0 {
            guard let k = stringValue(-2) else { throw argError(i, message: "metadata keys must be strings") }
            switch type(-1) {
            case LUA_TSTRING: meta[k] = stringValue(-1)
            case LUA_TNUMBER:
                meta[k] = lua_isinteger(L, -1) != 0 ? String(lua_tointegerx(L, -1, nil)) : String(lua_tonumberx(L, -1, nil))
            case LUA_TBOOLEAN: meta[k] = lua_toboolean(L, -1) != 0 ? "true" : "false"
            default:
                throw argError(i, message: "metadata '\(k)' must be a string, number or boolean, got \(typeName(-1))")
            }
            pop()
        }
        return meta
    }

    /// An integer or a table of integers (a kernel size, stride, padding...).
    public func intOrInts(_ i: Int32, what: String) throws -> [Int] {
        if lua_type(L, i) == LUA_TTABLE { return try intArray(i, what: what) }
        guard lua_type(L, i) == LUA_TNUMBER else { throw argError(i, "integer or table of integers (\(what))") }
        return [try int(i)]
    }

    // MARK: Objects

    /// The Swift object of the userdata at `i` when it is a `T` (no error).
    public func toObject<T: AnyObject>(_ i: Int32, _: T.Type) -> T? {
        guard let box = sskd_to_box(L, i), let p = box.pointee.object else { return nil }
        return Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue() as? T
    }

    /// The Swift object of the userdata at `i`, or an argument error naming `expected`.
    public func object<T: AnyObject>(_ i: Int32, _ t: T.Type, expected: String) throws -> T {
        guard let box = sskd_to_box(L, i) else { throw argError(i, expected) }
        guard let p = box.pointee.object else { throw argError(i, message: "\(expected) has been collected") }
        guard let o = Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue() as? T else { throw argError(i, expected) }
        return o
    }

    /// Pushes `object` as a userdata of its registered Lua type (the most specific one).
    public func push(object: AnyObject) throws {
        guard let type = LuaTypes.type(for: object) else { throw LuaError("\(name): no Lua type registered for \(Swift.type(of: object))") }
        push(object: object, type: type)
    }

    /// Pushes `object` as a userdata of a known type id (fast path). The object must be of that
    /// type's class (or a subclass): methods rely on it.
    func push(object: AnyObject, type: Int32) {
        let p = Unmanaged.passRetained(object).toOpaque()
        _ = sskd_push_box(L, type, p)
        LuaHost.noteObjectPushed(L)
    }

    // MARK: Tables (raw)

    /// Pushes `t[key]` (raw) for the table at `i`.
    @discardableResult
    public func rawField(_ i: Int32, _ key: String) -> Int32 {
        let a = lua_absindex(L, i)
        pushString(key)
        return lua_rawget(L, a)
    }
    /// `t[key] = top` (raw) for the table at `i`; pops the value.
    public func setRawField(_ i: Int32, _ key: String) {
        let a = lua_absindex(L, i)
        pushString(key)
        lua_rotate(L, -2, 1)
        lua_rawset(L, a)
    }
    /// The string keys of the table at `i` (raw).
    public func keys(_ i: Int32) -> [String] {
        let a = lua_absindex(L, i)
        var out: [String] = []
        lua_pushnil(L)
        while lua_next(L, a) != 0 {
            if let k = stringValue(-2) { out.append(k) }
            pop()
        }
        return out
    }

    /// Options from the table at `i` (nil/none gives empty options); keys are checked by `Options.finish`.
    public func options(_ i: Int32) throws -> Options {
        if isNoneOrNil(i) { return Options(call: self, index: 0) }
        guard lua_type(L, i) == LUA_TTABLE else { throw argError(i, "table of options") }
        return Options(call: self, index: lua_absindex(L, i))
    }
}

/// Named options read from a Lua table (`{label_smoothing = 0.1, reduction = "sum"}`). Every
/// read records the key; `finish()` rejects keys nobody read, so a misspelt option is an error.
public final class Options {
    let call: LuaCall
    let index: Int32
    private var used: Set<String> = []

    init(call: LuaCall, index: Int32) {
        self.call = call
        self.index = index
    }

    var L: OpaquePointer { call.L }

    /// Pushes the raw value of `key` (nil when there is no table) and returns its Lua type.
    private func fetch(_ key: String) -> Int32 {
        used.insert(key)
        if index == 0 { lua_pushnil(L); return LUA_TNIL }
        return call.rawField(index, key)
    }

    private func bad(_ key: String, _ expected: String) -> LuaError {
        LuaError("bad option '\(key)' to '\(call.name)' (\(expected) expected, got \(call.typeName(-1)))")
    }

    public func has(_ key: String) -> Bool { let t = fetch(key); call.pop(); return t != LUA_TNIL }

    public func number(_ key: String) throws -> Double? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        guard t == LUA_TNUMBER else { throw bad(key, "number") }
        return lua_tonumberx(L, -1, nil)
    }
    public func float(_ key: String) throws -> Float? { try number(key).map(Float.init) }
    public func float(_ key: String, default d: Float) throws -> Float { try float(key) ?? d }

    public func int(_ key: String) throws -> Int? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        var v: lua_Integer = 0
        guard t == LUA_TNUMBER, sskd_isinteger_value(L, -1, &v) != 0 else { throw bad(key, "integer") }
        return Int(v)
    }
    public func int(_ key: String, default d: Int) throws -> Int { try int(key) ?? d }

    public func bool(_ key: String) throws -> Bool? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        guard t == LUA_TBOOLEAN else { throw bad(key, "boolean") }
        return lua_toboolean(L, -1) != 0
    }
    public func bool(_ key: String, default d: Bool) throws -> Bool { try bool(key) ?? d }

    public func string(_ key: String) throws -> String? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        guard let s = call.stringValue(-1) else { throw bad(key, "string") }
        return s
    }

    /// An integer or a table of integers.
    public func ints(_ key: String) throws -> [Int]? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        var v: lua_Integer = 0
        if t == LUA_TNUMBER {
            guard sskd_isinteger_value(L, -1, &v) != 0 else { throw bad(key, "integer") }
            return [Int(v)]
        }
        guard t == LUA_TTABLE else { throw bad(key, "integer or table of integers") }
        do { return try call.intArray(-1, what: key) } catch { throw bad(key, "table of integers") }
    }

    /// A table of numbers.
    public func numbers(_ key: String) throws -> [Double]? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        guard t == LUA_TTABLE else { throw bad(key, "table of numbers") }
        let n = Int(lua_rawlen(L, -1))
        var out: [Double] = []
        for k in 0..<n {
            lua_rawgeti(L, -1, lua_Integer(k + 1))
            defer { call.pop() }
            guard lua_type(L, -1) == LUA_TNUMBER else { throw LuaError("bad option '\(key)' to '\(call.name)' (entry \(k + 1) must be a number, got \(call.typeName(-1)))") }
            out.append(lua_tonumberx(L, -1, nil))
        }
        return out
    }

    public func object<T: AnyObject>(_ key: String, _ type: T.Type, expected: String) throws -> T? {
        let t = fetch(key); defer { call.pop() }
        if t == LUA_TNIL { return nil }
        guard let o = call.toObject(-1, type) else { throw bad(key, expected) }
        return o
    }

    /// Rejects keys that were never read.
    public func finish() throws {
        guard index != 0 else { return }
        let unknown = call.keys(index).filter { !used.contains($0) }.sorted()
        let nonString = countNonStringKeys()
        if let k = unknown.first {
            throw LuaError("unknown option '\(k)' to '\(call.name)' (expected \(used.sorted().joined(separator: ", ")))")
        }
        if nonString > 0 { throw LuaError("bad options to '\(call.name)': only named options are accepted (expected \(used.sorted().joined(separator: ", ")))") }
    }

    private func countNonStringKeys() -> Int {
        var n = 0
        lua_pushnil(L)
        while lua_next(L, index) != 0 {
            if lua_type(L, -2) != LUA_TSTRING { n += 1 }
            call.pop()
        }
        return n
    }
}

// MARK: - Userdata types

/// Docs of one binding: `help(x)` prints them.
public struct LuaDoc {
    public var signature: String
    public var summary: String
}

/// A Swift class registered as a Lua userdata type: methods, fields (`__index`), assignable
/// fields (`__newindex`), metamethods, `__tostring`, `__gc`, `__eq` (identity) and `__name`.
///
/// Register once per process (e.g. in a `static let`) and install into every host through
/// `LuaHost`'s library list. Subclasses: register the subclass after its base with
/// `inherits:`; it gets the base's methods and fields, and `push(object:)` picks the most
/// specific registered type.
public final class LuaType {
    public let id: Int32
    public let name: String
    public let doc: String
    let matches: (AnyObject) -> Bool
    public internal(set) var methods: [(name: String, id: Int32, doc: LuaDoc)] = []
    var fields: [(name: String, doc: String)] = []
    var getters: [String: (LuaCall, AnyObject) throws -> Int32] = [:]
    var setters: [String: (LuaCall, AnyObject) throws -> Void] = [:]
    /// String keys that are no registered field (a module's children and parameters by name).
    var dynamicField: ((LuaCall, AnyObject, String) throws -> Int32?)?
    /// `obj.key = value` for string keys without a setter; returns false to refuse.
    var dynamicSetter: ((LuaCall, AnyObject, String) throws -> Bool)?
    /// Non-string keys in `obj[key]` (tensor indexing).
    var indexHook: ((LuaCall, AnyObject) throws -> Int32)?
    var newIndexHook: ((LuaCall, AnyObject) throws -> Void)?
    var metamethods: [String: Int32] = [:]
    var tostring: (AnyObject) -> String

    init(id: Int32, name: String, doc: String, matches: @escaping (AnyObject) -> Bool) {
        self.id = id
        self.name = name
        self.doc = doc
        self.matches = matches
        self.tostring = { "\(name): \(ObjectIdentifier($0))" }
    }
}

/// A typed handle on a `LuaType` for registering members with closures that receive `self` as a `T`.
public struct LuaClass<T: AnyObject> {
    public let type: LuaType

    /// Registers a method (`obj:name(...)`); `self` is argument #1, checked to be a `T`.
    public func method(_ name: String, _ signature: String, _ summary: String, _ body: @escaping (LuaCall, T) throws -> Int32) {
        let tname = type.name, tid = type.id
        let id = FunctionTable.add("\(tname):\(name)") { c in
            // Fast path: a box of exactly this type holds a T (push(object:type:) guarantees it).
            if let box = sskd_to_box(c.L, 1), box.pointee.type == tid, let p = box.pointee.object {
                return try body(c, Unmanaged<T>.fromOpaque(p).takeUnretainedValue())
            }
            return try body(c, try c.object(1, T.self, expected: tname))
        }
        type.methods.removeAll { $0.name == name }
        type.methods.append((name, id, LuaDoc(signature: signature, summary: summary)))
    }

    /// Registers a readable field (`obj.name`).
    public func field(_ name: String, _ summary: String, get: @escaping (LuaCall, T) throws -> Int32,
                      set: ((LuaCall, T) throws -> Void)? = nil) {
        type.getters[name] = { c, o in try get(c, o as! T) }
        if let set { type.setters[name] = { c, o in try set(c, o as! T) } }
        type.fields.removeAll { $0.name == name }
        type.fields.append((name, summary))
    }

    /// Handles `obj.key` for string keys that are no registered field or method; returns nil
    /// (Swift nil) to give Lua nil.
    public func dynamicField(_ body: @escaping (LuaCall, T, String) throws -> Int32?) { type.dynamicField = { c, o, k in try body(c, o as! T, k) } }

    /// Handles `obj.key = value` for string keys without a setter (stack: 1 object, 2 key,
    /// 3 value); return false to refuse (an error names the field).
    public func dynamicSetter(_ body: @escaping (LuaCall, T, String) throws -> Bool) { type.dynamicSetter = { c, o, k in try body(c, o as! T, k) } }

    /// Handles `obj[key]` for non-string keys (stack: 1 object, 2 key).
    public func index(_ body: @escaping (LuaCall, T) throws -> Int32) { type.indexHook = { c, o in try body(c, o as! T) } }
    /// Handles `obj[key] = value` for non-string keys (stack: 1 object, 2 key, 3 value).
    public func newIndex(_ body: @escaping (LuaCall, T) throws -> Void) { type.newIndexHook = { c, o in try body(c, o as! T) } }

    /// Registers a metamethod (`__add`, `__len`, `__call`...); the body checks its own arguments.
    public func meta(_ event: String, _ body: @escaping LuaBody) {
        type.metamethods[event] = FunctionTable.add("\(type.name).\(event)", body)
    }

    /// How the object prints (`tostring`, `print`, the REPL).
    public func tostring(_ f: @escaping (T) -> String) { type.tostring = { f($0 as! T) } }
}

/// The registered userdata types (process-wide).
public enum LuaTypes {
    nonisolated(unsafe) static var all: [LuaType] = []
    nonisolated(unsafe) private static var cache: [ObjectIdentifier: Int32] = [:]

    /// Registers `T` as a Lua type named `name`. With `inherits`, starts from the base type's
    /// methods and fields (register the base first).
    public static func register<T: AnyObject>(_: T.Type, name: String, doc: String, inherits base: LuaType? = nil) -> LuaClass<T> {
        let t = LuaType(id: Int32(all.count + 1), name: name, doc: doc, matches: { $0 is T })
        if let base {
            t.methods = base.methods
            t.fields = base.fields
            t.getters = base.getters
            t.setters = base.setters
            t.indexHook = base.indexHook
            t.dynamicField = base.dynamicField
            t.dynamicSetter = base.dynamicSetter
            t.newIndexHook = base.newIndexHook
            t.metamethods = base.metamethods
            t.tostring = base.tostring
        }
        all.append(t)
        cache.removeAll()
        return LuaClass(type: t)
    }

    static func name(of id: Int32) -> String {
        id >= 1 && Int(id) <= all.count ? all[Int(id) - 1].name : "userdata"
    }
    static func type(id: Int32) -> LuaType? { id >= 1 && Int(id) <= all.count ? all[Int(id) - 1] : nil }

    /// The most specific registered type of `object` (the last registered that matches).
    static func type(for object: AnyObject) -> Int32? {
        let key = ObjectIdentifier(Swift.type(of: object))
        if let id = cache[key] { return id }
        guard let t = all.last(where: { $0.matches(object) }) else { return nil }
        cache[key] = t.id
        return t.id
    }

    /// Generic metamethod bodies shared by all types.
    static let gcID = FunctionTable.add("__gc") { c in
        if let box = sskd_to_box(c.L, 1), let p = box.pointee.object {
            box.pointee.object = nil
            Unmanaged<AnyObject>.fromOpaque(p).release()
        }
        return 0
    }
    static let eqID = FunctionTable.add("__eq") { c in
        let a = sskd_to_box(c.L, 1)?.pointee.object, b = sskd_to_box(c.L, 2)?.pointee.object
        c.push(a != nil && a == b)
        return 1
    }
    static let tostringID = FunctionTable.add("__tostring") { c in
        guard let box = sskd_to_box(c.L, 1), let t = type(id: box.pointee.type) else { c.pushString("userdata"); return 1 }
        guard let p = box.pointee.object else { c.pushString("\(t.name) (collected)"); return 1 }
        c.pushString(t.tostring(Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()))
        return 1
    }
    /// `__index` fallback: fields by name, then the type's index hook for other keys.
    static let indexID = FunctionTable.add("__index") { c in
        guard let box = sskd_to_box(c.L, 1), let t = type(id: box.pointee.type) else { c.pushNil(); return 1 }
        guard let p = box.pointee.object else { throw LuaError("attempt to index a collected \(t.name)") }
        let o = Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()
        if let key = c.stringValue(2) {
            if let get = t.getters[key] { return try get(LuaCall(c.L, name: "\(t.name).\(key)"), o) }
            if let dyn = t.dynamicField, let n = try dyn(LuaCall(c.L, name: "\(t.name).\(key)"), o, key) { return n }
            // A string with ':' is a slice (`x["1:3"]`) for types that index.
            guard key.contains(":"), let hook = t.indexHook else { c.pushNil(); return 1 }
            return try hook(LuaCall(c.L, name: "\(t.name).__index"), o)
        }
        guard let hook = t.indexHook else { c.pushNil(); return 1 }
        return try hook(LuaCall(c.L, name: "\(t.name).__index"), o)
    }
    static let newIndexID = FunctionTable.add("__newindex") { c in
        guard let box = sskd_to_box(c.L, 1), let t = type(id: box.pointee.type) else { return 0 }
        guard let p = box.pointee.object else { throw LuaError("attempt to index a collected \(t.name)") }
        let o = Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()
        if let key = c.stringValue(2) {
            if t.setters[key] == nil, let dyn = t.dynamicSetter, try dyn(LuaCall(c.L, name: "\(t.name).\(key)"), o, key) { return 0 }
            guard let set = t.setters[key] else {
                throw LuaError(t.getters[key] != nil ? "field '\(key)' of \(t.name) is read-only" : "\(t.name) has no assignable field '\(key)'")
            }
            try set(LuaCall(c.L, name: "\(t.name).\(key)"), o)
            return 0
        }
        guard let hook = t.newIndexHook else { throw LuaError("\(t.name) does not support item assignment") }
        try hook(LuaCall(c.L, name: "\(t.name).__newindex"), o)
        return 0
    }
}
