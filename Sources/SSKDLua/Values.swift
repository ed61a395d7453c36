// Calling Lua from Swift (the trainer calls schedules, losses and stoppers this way): values
// crossing the boundary, references to Lua values, and protected calls that turn Lua errors
// into Swift errors.
import CLua
import CLuaShim
import SSKDTensor

/// A reference to a Lua value held in the registry (a function, a plugin, a stopper object...).
/// Released when the reference is; calls through it fail cleanly once its host is gone.
public final class LuaRef {
    weak var host: LuaHost?
    let ref: Int32

    /// Pops the top of the stack into a new reference.
    init(host: LuaHost) {
        self.host = host
        self.ref = luaL_ref(host.L, sskd_registryindex())
    }

    deinit {
        if let host { luaL_unref(host.L, sskd_registryindex(), ref) }
    }

    func push() throws {
        guard let host else { throw LuaError("the Lua state of this reference is closed") }
        lua_rawgeti(host.L, sskd_registryindex(), lua_Integer(ref))
    }
}

/// A value passed to or returned from Lua.
public enum LuaValue {
    case `nil`
    case boolean(Bool)
    case number(Double)
    case string(String)
    case tensor(Tensor)
    /// Any other registered Swift object (a Module, an Optimizer...).
    case object(AnyObject)
    /// A Lua array built from Swift values (pushing only).
    case list([LuaValue])
    /// A Lua table with string keys built from Swift values (pushing only), e.g. a history record.
    case record([String: LuaValue])
    /// A Lua value kept by reference (tables, functions, anything not convertible).
    case ref(LuaRef)

    public var number: Double? { if case let .number(v) = self { return v }; return nil }
    public var tensor: Tensor? { if case let .tensor(t) = self { return t }; return nil }
    public var boolean: Bool? { if case let .boolean(b) = self { return b }; return nil }
    public var string: String? { if case let .string(s) = self { return s }; return nil }
    /// The Lua-side type name, for messages.
    public var typeName: String {
        switch self {
        case .nil: return "nil"
        case .boolean: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .tensor: return "Tensor"
        case .object: return "object"
        case .list, .record, .ref: return "table"
        }
    }

    /// Lua truthiness: everything but nil and false.
    public var isTruthy: Bool {
        switch self {
        case .nil: return false
        case let .boolean(b): return b
        default: return true
        }
    }
}

extension LuaHost {
    /// Pushes a Swift value.
    public func push(_ v: LuaValue) throws {
        let c = call
        try c.reserve(4)
        switch v {
        case .nil: c.pushNil()
        case let .boolean(b): c.push(b)
        case let .number(d): c.push(d)
        case let .string(s): c.pushString(s)
        case let .tensor(t): c.push(t)
        case let .object(o): try c.push(object: o)
        case let .list(items):
            lua_createtable(L, Int32(items.count), 0)
            for (k, item) in items.enumerated() { try push(item); lua_rawseti(L, -2, lua_Integer(k + 1)) }
        case let .record(fields):
            lua_createtable(L, 0, Int32(fields.count))
            for (k, item) in fields { try push(item); c.setRawField(-2, k) }
        case let .ref(r): try r.push()
        }
    }

    /// The value at `index` as a Swift value (tables and functions by reference).
    public func value(at index: Int32) -> LuaValue {
        let c = call
        switch lua_type(L, index) {
        case LUA_TNIL, LUA_TNONE: return .nil
        case LUA_TBOOLEAN: return .boolean(lua_toboolean(L, index) != 0)
        case LUA_TNUMBER: return .number(lua_tonumberx(L, index, nil))
        case LUA_TSTRING: return .string(c.stringValue(index) ?? "")
        default:
            if let t = c.toObject(index, Tensor.self) { return .tensor(t) }
            if let box = sskd_to_box(L, index), let p = box.pointee.object { return .object(Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue()) }
            lua_pushvalue(L, index)
            return .ref(LuaRef(host: self))
        }
    }

    /// A reference to the value at a dotted global path (`"schedules.paper_gradual"`), read raw;
    /// nil when absent.
    public func reference(_ path: String) -> LuaRef? {
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        sskd_pushglobaltable(L)
        for part in path.split(separator: ".") {
            guard lua_type(L, -1) == LUA_TTABLE else { return nil }
            call.rawField(-1, String(part))
            lua_rotate(L, -2, 1); call.pop()
        }
        guard lua_type(L, -1) != LUA_TNIL else { return nil }
        return LuaRef(host: self)
    }

    /// Calls a Lua value (function or callable) with `args` in protected mode; a Lua error
    /// becomes a `LuaError` with its message and traceback.
    @discardableResult
    public func call(_ f: LuaValue, _ args: [LuaValue]) throws -> [LuaValue] {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        try call.reserve(Int32(args.count) + 4)
        try push(f)
        for a in args { try push(a) }
        try pcall(nargs: Int32(args.count), nresults: LUA_MULTRET)
        let top = lua_gettop(L)
        return top > base ? ((base + 1)...top).map { value(at: $0) } : []
    }

    /// Calls method `name` of an object (`stopper:step(history)`): `obj.name(obj, args...)`.
    @discardableResult
    public func callMethod(_ object: LuaValue, _ name: String, _ args: [LuaValue]) throws -> [LuaValue] {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        try push(object)
        guard lua_type(L, -1) == LUA_TTABLE else { throw LuaError("cannot call method '\(name)' on a \(call.typeName(-1)) value") }
        guard call.rawField(-1, name) == LUA_TFUNCTION else { throw LuaError("the object has no method '\(name)'") }
        let method = value(at: -1)
        return try call(method, [object] + args)
    }
}
